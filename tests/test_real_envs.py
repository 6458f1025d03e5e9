import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from cosmos3_robot.embodiments import ActionError
from cosmos3_robot.tasks import make_real_env
from cosmos3_robot.tasks.aloha import AlohaRealEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval.rollout import rollout
from cosmos3_robot.tasks.pusht import PUSHT_LEVELS, make_pusht_policy
from cosmos3_robot.embodiments.perception import perceive, perception_dims, project
from cosmos3_robot.tasks.pusht.vision import estimate_block_pose


def test_pusht_passes_check_env_and_uses_lerobot_keys():
    env = PushTRealEnv()
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"observation.image", "observation.state"}
    assert obs["observation.image"].shape == (96, 96, 3) and obs["observation.state"].dtype == np.float32
    assert env.render().shape == (96, 96, 3)


def test_pusht_reset_is_deterministic_and_restores_state():
    env = PushTRealEnv()
    a, info_a = env.reset(seed=7)
    for _ in range(5):
        env.step(env.action_space.sample())
    b, info_b = env.reset(seed=7)
    np.testing.assert_array_equal(a["observation.image"], b["observation.image"])
    np.testing.assert_array_equal(info_a["state"], info_b["state"])
    # mid-episode snapshot: the same actions from a restored state give the same frames
    for _ in range(8):
        env.step(np.array([300.0, 200.0]))
    snapshot = env.get_state()
    first = [env.step(np.array([150.0, 350.0]))[0]["observation.image"] for _ in range(3)]
    env.reset(options={"state": snapshot})
    np.testing.assert_array_equal(env.get_state(), snapshot)
    second = [env.step(np.array([150.0, 350.0]))[0]["observation.image"] for _ in range(3)]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)


def test_pusht_bad_actions_name_the_field():
    env = PushTRealEnv(out_of_limits="reject")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ActionError, match="field 'target' has nan"):
        env.step(np.array([np.nan, 1.0]))
    with pytest.raises(ActionError, match="outside"):
        env.step(np.array([600.0, 1.0]))
    with pytest.raises(ValueError, match="expected \\(5,\\)"):
        env.reset(options={"state": [1, 2, 3]})


def test_block_pose_from_pixels_is_accurate():
    env = PushTRealEnv()
    pos_err, ang_err = [], []
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        est = estimate_block_pose(obs["observation.image"])
        truth = info["state"][2:]
        pos_err.append(np.linalg.norm(est[:2] - truth[:2]))
        ang_err.append(abs((est[2] - truth[2] + np.pi) % (2 * np.pi) - np.pi))
    # 1 image pixel = 5.3 workspace units
    assert np.median(pos_err) < 3.0 and np.median(np.degrees(ang_err)) < 3.0


def test_perceived_block_pose_features():
    env = PushTRealEnv()
    frames, truth = [], []
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        frames.append(obs["observation.image"])
        truth.append(info["state"][2:5])
    feats = perceive("pusht_block_pose", np.stack(frames))
    assert feats.shape == (5, 4) and feats.dtype == np.float32 and perception_dims("pusht_block_pose") == 4
    truth = np.array(truth)
    # x, y scaled to [-1, 1] (1 unit = 1/256); angle as cos, sin
    assert np.abs(feats[:, :2] - (truth[:, :2] / 256 - 1)).max() < 6 / 256
    np.testing.assert_allclose(np.hypot(feats[:, 2], feats[:, 3]), 1, atol=1e-5)
    est_angle = np.arctan2(feats[:, 3], feats[:, 2])
    assert np.abs((est_angle - truth[:, 2] + np.pi) % (2 * np.pi) - np.pi).max() < np.radians(5)
    # a frame without the T keeps the previous pose; the first one gets the centre, angle 0
    blank = np.full_like(frames[0], 255)
    held = perceive("pusht_block_pose", np.stack([blank, frames[0], blank]))
    np.testing.assert_array_equal(held[0], [0, 0, 1, 0])
    np.testing.assert_array_equal(held[2], held[1])
    # predictions drifting off the valid set come back to it
    np.testing.assert_allclose(project("pusht_block_pose", np.array([[2.0, -3.0, 3.0, 4.0], [0.5, 0.2, 0.0, 0.0]])),
                               [[1, -1, 0.6, 0.8], [0.5, 0.2, 1, 0]], atol=1e-6)
    np.testing.assert_allclose(project("pusht_block_pose", feats), feats, atol=1e-6)
    with pytest.raises(ValueError, match="unknown perceived state 'nope'"):
        perceive("nope", np.stack(frames))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        perceive("pusht_block_pose", frames[0])


@pytest.mark.slow
def test_expert_and_random_success_over_20_seeds():
    env = PushTRealEnv()
    rates = {}
    for name in ("expert", "random"):
        policy = make_pusht_policy(name)
        rates[name] = np.mean([rollout(env, policy, seed=s)["success"] for s in range(20)])
    assert rates["expert"] >= 0.8 and rates["random"] <= 0.1, rates


def test_expert_beats_random_on_a_few_seeds():
    env = PushTRealEnv(max_episode_steps=150)
    expert, rnd = make_pusht_policy("expert"), make_pusht_policy("random")
    cov = {"expert": [], "random": []}
    for seed in (2, 4):
        for name, pol in (("expert", expert), ("random", rnd)):
            cov[name].append(rollout(env, pol, seed=seed)["info"]["coverage"])
    assert np.mean(cov["expert"]) > 0.8 > np.mean(cov["random"]) + 0.3, cov


def test_policy_ladder_names():
    assert len(PUSHT_LEVELS) >= 8
    for name in PUSHT_LEVELS:
        assert make_pusht_policy(name).name == name
    with pytest.raises(ValueError, match="unknown PushT policy 'genius'"):
        make_pusht_policy("genius")


def test_aloha_adapter():
    env = AlohaRealEnv(task="transfer_cube", max_episode_steps=5)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert obs["observation.images.top"].shape == (480, 640, 3) and obs["observation.state"].shape == (14,)
    state = info["state"]
    hold = obs["observation.state"].copy()
    after = [env.step(hold)[0]["observation.state"] for _ in range(3)]
    env.reset(seed=2)
    obs2, _ = env.reset(options={"state": state})
    np.testing.assert_allclose(obs2["observation.state"], obs["observation.state"], atol=1e-6)
    again = [env.step(hold)[0]["observation.state"] for _ in range(3)]
    np.testing.assert_allclose(np.stack(after), np.stack(again), atol=1e-6)
    with pytest.raises(ValueError, match="unknown task"):
        make_real_env("franka")


def test_record_with_states_keeps_coverage_and_restorable_states():
    from cosmos3_robot.eval.fidelity import record_with_states

    env = PushTRealEnv(max_episode_steps=10_000, success_threshold=1.01)
    ep = record_with_states(env, make_pusht_policy("expert"), seed=2, steps=12)
    assert ep["frames"].shape == (13, 96, 96, 3) and ep["actions"].shape == (12, 2) and ep["rewards"].shape == (12,)
    for t in (0, 5, 11):  # the reward after action t is the coverage of the state it led to
        env.reset(options={"state": ep["sim"][t + 1]})
        assert ep["rewards"][t] == pytest.approx(env.coverage())
        np.testing.assert_array_equal(env.render(), ep["frames"][t + 1])
