import resource

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import cosmos3_robot
from cosmos3_robot.embodiments import ActionError, Normalizer, load_spec
from cosmos3_robot.envs import PushTRealEnv, WorldModelEnv, WorldModelVectorEnv
from cosmos3_robot.model import WorldModel, get_config


def test_check_env_passes(tiny_checkpoint):
    env = WorldModelEnv(tiny_checkpoint, max_episode_steps=20)
    check_env(env, skip_render_check=True)


def test_reset_matches_real_first_frame_and_step_shapes(tiny_checkpoint):
    env = WorldModelEnv(tiny_checkpoint, max_episode_steps=3)
    obs, info = env.reset(seed=4)
    real_obs, _ = PushTRealEnv().reset(seed=4)
    np.testing.assert_array_equal(obs["observation.images.top"], real_obs["observation.images.top"])
    np.testing.assert_array_equal(obs["observation.state"], real_obs["observation.state"])
    obs, reward, terminated, truncated, info = env.step(np.array([100.0, 200.0], np.float32))
    assert obs["observation.images.top"].shape == (96, 96, 3) and obs["observation.images.top"].dtype == np.uint8
    assert obs["observation.state"].shape == (2,) and env.observation_space.contains(obs)
    assert 0.0 <= reward <= 1.0 and info["frames"].shape == (1, 96, 96, 3)
    obs, *_, truncated, info = env.step(np.array([[100.0, 200.0], [120.0, 210.0]]))  # a chunk of 2
    assert info["frames"].shape == (2, 96, 96, 3) and truncated  # 3 steps reached
    assert np.array_equal(env.render(), obs["observation.images.top"])


def test_reset_from_frames_episode_and_observation(tiny_checkpoint):
    env = WorldModelEnv(tiny_checkpoint)
    frames = np.random.default_rng(0).integers(0, 255, (3, 96, 96, 3), dtype=np.uint8)
    obs, _ = env.reset(seed=0, options={"frames": frames, "state": [10.0, 20.0]})
    np.testing.assert_array_equal(obs["observation.images.top"], frames[-1])
    episode = {"frames": {"observation.images.top": frames}, "state": np.array([[1, 2], [3, 4], [5, 6]], np.float32)}
    obs, _ = env.reset(seed=0, options={"episode": episode, "start": 1})
    np.testing.assert_array_equal(obs["observation.state"], [3, 4])
    with pytest.raises(ValueError, match="reset frames have shape"):
        env.reset(options={"frames": np.zeros((32, 32, 3), np.uint8)})


def rollout(env, seed, n=6):
    obs, _ = env.reset(seed=seed)
    out = [obs["observation.images.top"]]
    for k in range(n):
        obs, *_ = env.step(np.array([150.0 + 20 * k, 300.0]))
        out.append(obs["observation.images.top"])
    return np.stack(out)


def test_same_seed_same_rollout(tiny_checkpoint):
    env = WorldModelEnv(tiny_checkpoint)
    a, b, c = rollout(env, 1), rollout(env, 1), rollout(env, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_actions_name_the_field(tiny_checkpoint):
    env = WorldModelEnv(tiny_checkpoint, out_of_limits="reject")
    env.reset(seed=0)
    with pytest.raises(ActionError, match=r"shape \(3,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ActionError, match="field 'target' has nan"):
        env.step(np.array([np.nan, 1.0]))
    with pytest.raises(ActionError, match="dtype <U3 is not numeric"):
        env.step(np.array(["abc", "def"]))
    with pytest.raises(ActionError, match="field 'target' value 900"):
        env.step(np.array([900.0, 1.0]))


def test_long_rollout_keeps_memory_flat(tiny_checkpoint):
    env = WorldModelEnv(tiny_checkpoint, max_episode_steps=10_000)
    env.reset(seed=0)
    action = np.array([256.0, 256.0])
    for _ in range(200):
        env.step(action)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(800):
        env.step(action)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(env._ctx) == 2 and len(env._ctx_state) == 2  # the context window holds
    assert grown_mb < 50, f"peak memory grew {grown_mb:.1f} MB over 800 steps"


def test_vector_env_batches_and_autoresets(tiny_checkpoint):
    venv = WorldModelVectorEnv(3, tiny_checkpoint, max_episode_steps=2)
    obs, _ = venv.reset(seed=10)
    assert obs["observation.images.top"].shape == (3, 96, 96, 3) and venv.observation_space.contains(obs)
    single = WorldModelEnv(tiny_checkpoint)
    first, _ = single.reset(seed=11)
    np.testing.assert_array_equal(obs["observation.images.top"][1], first["observation.images.top"])  # env i: seed+i
    actions = np.full((3, 2), 256.0, np.float32)
    _, r, term, trunc, _ = venv.step(actions)
    assert r.shape == (3,) and not trunc.any()
    _, _, _, trunc, _ = venv.step(actions)
    assert trunc.all()  # max_episode_steps = 2
    obs, r, term, trunc, _ = venv.step(actions)  # next-step autoreset: this step resets
    assert not trunc.any() and np.all(r == 0) and venv._steps.tolist() == [0, 0, 0]
    assert venv.observation_space.contains(obs)
    with pytest.raises(ValueError, match="batch size 2"):
        venv.step(actions[:2])


def test_gymnasium_registry(tiny_checkpoint):
    env = gym.make("cosmos3_robot/PushT-v0", checkpoint=tiny_checkpoint)
    obs, _ = env.reset(seed=0)
    assert "observation.images.top" in obs
    venv = cosmos3_robot.make_vec_env("cosmos3_robot/PushT-v0", num_envs=2, checkpoint=tiny_checkpoint)
    obs, _ = venv.reset(seed=0)
    assert obs["observation.state"].shape == (2, 2)
