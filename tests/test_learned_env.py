import resource

import gymnasium as gym
import numpy as np
import pytest

import cosmos3_robot
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv

START = "cosmos3_robot/PushTReal-v0"


def test_registered_env_has_gym_pusht_time_limit_and_native_vector_env():
    env = gym.make("cosmos3_robot/PushT-v0")
    assert env.spec.max_episode_steps == 300
    venv = gym.make_vec("cosmos3_robot/PushT-v0", 4)
    assert isinstance(venv, LearnedVectorEnv)
    assert venv.call("_max_episode_steps") == (300,) * 4  # what LeRobot's eval loop asks
    obs, _ = venv.reset(seed=[0, 1, 2, 3])
    frames = venv.call("render")  # one frame per sub-env, as SyncVectorEnv gives it (LeRobot's eval videos)
    assert len(frames) == 4 and all(f.shape == (96, 96, 3) for f in frames)
    np.testing.assert_array_equal(np.stack(frames), obs["observation.image"])
    assert venv.get_attr("success_threshold") == (0.9,) * 4
    venv.set_attr("success_threshold", 0.5)
    assert venv.success_threshold == 0.5
    with pytest.raises(ValueError, match="share attributes"):
        venv.set_attr("success_threshold", [0.1, 0.2, 0.3, 0.4])


def test_reset_matches_real_first_frame_and_chunks(tiny_checkpoint):
    env = LearnedEnv(checkpoint=tiny_checkpoint, start=START, max_episode_steps=3)
    obs, info = env.reset(seed=4)
    real_obs, _ = PushTRealEnv().reset(seed=4)
    np.testing.assert_array_equal(obs["observation.image"], real_obs["observation.image"])
    np.testing.assert_array_equal(obs["observation.state"], real_obs["observation.state"])
    obs, reward, terminated, truncated, info = env.step(np.array([100.0, 200.0], np.float32))
    assert 0.0 <= reward <= 1.0 and info["frames"].shape == (1, 96, 96, 3)
    obs, *_, truncated, info = env.step(np.array([[100.0, 200.0], [120.0, 210.0]]))  # a chunk of 2
    assert info["frames"].shape == (2, 96, 96, 3) and truncated  # 3 steps reached
    assert np.array_equal(env.render(), obs["observation.image"])


def test_reset_from_frames_episode_observation_and_instruction(tiny_checkpoint):
    env = LearnedEnv(checkpoint=tiny_checkpoint)  # no start source: frames must be given
    with pytest.raises(ValueError, match="no start source"):
        env.reset(seed=0)
    frames = np.random.default_rng(0).integers(0, 255, (3, 96, 96, 3), dtype=np.uint8)
    obs, _ = env.reset(seed=0, options={"frames": frames, "state": [10.0, 20.0]})
    np.testing.assert_array_equal(obs["observation.image"], frames[-1])
    episode = {"frames": {"observation.image": frames}, "state": np.array([[1, 2], [3, 4], [5, 6]], np.float32)}
    obs, _ = env.reset(seed=0, options={"episode": episode, "start": 1})
    np.testing.assert_array_equal(obs["observation.state"], [3, 4])
    obs2, _ = env.reset(seed=0, options={"observation": obs})
    np.testing.assert_array_equal(obs2["observation.image"], obs["observation.image"])
    with pytest.raises(ValueError, match=r"camera 'top' have shape \(1, 1, 32, 32, 3\)"):
        env.reset(options={"frames": np.zeros((32, 32, 3), np.uint8), "state": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'frames' needs 'state'"):  # never a silent robot at [0, 0]
        env.reset(options={"frames": frames})
    with pytest.raises(ValueError, match=r"'state' has shape \(2, 2\); expected \(2,\) or \(3, 2\)"):
        env.reset(options={"frames": frames, "state": [[1.0, 2.0]] * 2})
    with pytest.raises(ValueError, match="NaN or inf"):
        env.reset(options={"frames": frames, "state": [np.nan, 1.0]})
    # the instruction reaches the backend's session (the MoT backend conditions its text tokens on it)
    env.reset(seed=0, options={"frames": frames, "state": [10.0, 20.0], "instruction": "push it left"})
    assert env._session.instruction == "push it left"
    a = [env.step(np.array([200.0, 200.0]))[0]["observation.image"] for _ in range(2)]
    env.reset(seed=0, options={"frames": frames, "state": [10.0, 20.0]})
    b = [env.step(np.array([200.0, 200.0]))[0]["observation.image"] for _ in range(2)]
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_success_threshold_zero_is_kept(tiny_checkpoint):
    env = LearnedEnv(checkpoint=tiny_checkpoint, start=START, success_threshold=0.0)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.array([256.0, 256.0]))
    assert terminated and info["is_success"]


def test_long_rollout_keeps_memory_flat():
    env = gym.make("cosmos3_robot/PushT-v0", max_episode_steps=None).unwrapped
    env.reset(seed=0)
    action = np.array([256.0, 256.0])
    for _ in range(200):
        env.step(action)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(800):
        env.step(action)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert env._session.data["world"].shape[1] == env.backend.history  # the context window holds
    assert grown_mb < 50, f"peak memory grew {grown_mb:.1f} MB over 800 steps"


def test_vector_env_autoresets_masks_and_renders(tiny_checkpoint):
    venv = LearnedVectorEnv(3, checkpoint=tiny_checkpoint, start=START, max_episode_steps=2)
    obs, _ = venv.reset(seed=10)
    single = LearnedEnv(checkpoint=tiny_checkpoint, start=START)
    first, _ = single.reset(seed=11)
    np.testing.assert_array_equal(obs["observation.image"][1], first["observation.image"])  # env i: seed+i
    actions = np.full((3, 2), 256.0, np.float32)
    _, r, term, trunc, info = venv.step(actions)
    assert r.shape == (3,) and not trunc.any() and info["_is_success"].all()
    _, _, _, trunc, _ = venv.step(actions)
    assert trunc.all()  # max_episode_steps = 2
    obs, r, term, trunc, info = venv.step(actions)  # next-step autoreset: this step only resets
    assert not trunc.any() and np.all(r == 0) and venv._steps.tolist() == [0, 0, 0]
    assert not info["_is_success"].any()
    assert venv.observation_space.contains(obs)
    frames = venv.render()
    assert isinstance(frames, tuple) and len(frames) == 3
    assert venv.metadata["render_fps"] == 10 and venv.metadata["autoreset_mode"].value == "NextStep"


def test_make_vec_env_helper(tiny_checkpoint):
    venv = cosmos3_robot.make_vec_env("cosmos3_robot/PushT-v0", num_envs=2, checkpoint=tiny_checkpoint)
    obs, _ = venv.reset(seed=0)
    assert obs["observation.state"].shape == (2, 2)
