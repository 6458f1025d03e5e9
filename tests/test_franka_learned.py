"""The learned Franka cube simulator's parts: the kinematic chain against MuJoCo, perception from the
exterior cameras against the scene's truth, the policy ladder's names, the keypoint renderer's fit, the
recipe end to end on a tiny dataset, and the shipped checkpoint stepping without MuJoCo."""

import numpy as np
import pytest
import torch

from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.tasks.franka_cube import LADDER, FrankaCubeRealEnv, make_franka_policy
from cosmos3_robot.tasks.franka_cube.kinematics import chain_parameters, forward
from cosmos3_robot.tasks.franka_cube.perception import EXTERIORS, locate_cube
from cosmos3_robot.tasks.franka_cube.real import CUBE_HALF, HOME_QPOS, FrankaIK, exterior_calibrations


def test_kinematic_chain_matches_mujoco():
    chain, ik = chain_parameters(), FrankaIK()
    q = HOME_QPOS + np.random.default_rng(0).normal(0, 0.4, (6, 7))
    _, ee, R = forward(chain, q)
    for i in range(len(q)):
        p, r = ik.forward(q[i])
        np.testing.assert_allclose(ee[i], p, atol=1e-9)
        np.testing.assert_allclose(R[i], r, atol=1e-9)


def test_the_cube_is_located_from_the_two_exterior_cameras():
    env = FrankaCubeRealEnv(cameras=list(EXTERIORS))
    calibs = exterior_calibrations()
    errors = []
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        found = locate_cube({c: obs[f"observation.images.{c}"] for c in EXTERIORS}, calibs, CUBE_HALF)
        errors.append(np.linalg.norm(found - info["cube"]))
    env.close()
    assert max(errors) < 0.01, errors  # at rest on the table: well inside the 3 cm success radius


def test_ladder_names_make_distinct_degradations():
    policies = {name: make_franka_policy(name, seed=0) for name in LADDER}
    assert len(LADDER) >= 6 and policies["random"].name == "random"
    assert policies["expert-noise1"].noise == pytest.approx(0.01)
    assert policies["expert-slow40"].speed == pytest.approx(0.4)
    assert policies["expert-offset3"].offset == pytest.approx(0.03)
    assert policies["expert-early3"].close_early == pytest.approx(3.0)
    assert make_franka_policy("expert-drop5").release_height == pytest.approx(0.05)
    mix = make_franka_policy("expert-mix")
    draws = set()
    for seed in range(6):
        mix.reset(seed)
        draws.add((mix.noise, mix.offset, mix.speed))
    assert len(draws) > 1  # degradations drawn anew per episode
    with pytest.raises(ValueError, match="expert-offset<cm>"):
        make_franka_policy("expert-wobble2")
    with pytest.raises(ValueError, match="speed"):
        make_franka_policy("expert-slow0")


def test_keypoint_renderer_learns_where_a_segment_is():
    from cosmos3_robot.model.keypoint_renderer import KeypointRenderer, KeypointRendererConfig
    from cosmos3_robot.train.renderers import fit_keypoint_renderer

    torch.manual_seed(0)
    r = KeypointRenderer(KeypointRendererConfig(groups=[[[0, 1]]], cameras=1, height=16, width=24, channels=16,
                                                layers=3))
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(rng.uniform(-0.8, 0.8, (256, 2, 3))).float()
    frames = np.zeros((256, 16, 24, 3), np.uint8)
    for i, (a, b) in enumerate(pts[:, :, :2].numpy()):  # a white dot at each segment's first end
        x, y = int((a[0] + 1) / 2 * 24), int((a[1] + 1) / 2 * 16)
        frames[i, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = 255
    cam = torch.zeros(256, dtype=torch.long)
    before = ((r(pts, cam).permute(0, 2, 3, 1) * 255 - torch.from_numpy(frames).float()) ** 2).mean()
    info = fit_keypoint_renderer(r, pts, cam, torch.from_numpy(frames), steps=150, batch=32, progress=False)
    after = ((r(pts, cam).permute(0, 2, 3, 1) * 255 - torch.from_numpy(frames).float()) ** 2).mean()
    assert after < 0.5 * before and info["steps"] == 150


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_recipe_trains_a_learned_scene_from_collected_data(tmp_path):
    """collect --env droid (lossless) -> tasks/franka_cube/train.py -> a checkpoint the learned env loads."""
    from cosmos3_robot.cli import main
    from cosmos3_robot.sim import LearnedEnv
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.tasks.franka_cube.train import main as train_main
    from cosmos3_robot.tasks.franka_cube.train import train

    data, out = tmp_path / "data", tmp_path / "ckpt"
    assert main(["collect", "--env", "droid", "--policy", "expert", "--episodes", "2", "--max-steps", "12",
                 "--video-quality", "lossless", "--out", str(data)]) == 0
    # 12 steps never reach a grasp, so the grasp constraint (estimated from grasps) is left out here
    with pytest.raises(ValueError, match="grasps caught the cube"):
        train(data, tmp_path / "no", arm_steps=1, tower_epochs=1, render_steps=1, progress=False)
    trained = train(data, out, arm_steps=20, tower_epochs=1, render_steps=5, progress=False, grasp=False,
                    refine_steps=3)
    assert trained.provenance["renderer_refine"]["steps"] == 3 and trained.provenance["renderer_refine"]["emphasis"]
    loaded = load_backend(out, runtime="torch")
    # the tower's change scale (set from the data by the fit) is what the checkpoint holds
    assert not torch.allclose(trained.task.dynamics.change_scale, torch.ones_like(trained.task.dynamics.change_scale))
    torch.testing.assert_close(loaded.task.dynamics.change_scale, trained.task.dynamics.change_scale)
    env = LearnedEnv(checkpoint=out, start="cosmos3_robot/FrankaCubeReal-v0")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.r_[obs["observation.state"][:7], 0.0])
    assert obs["observation.images.wrist_left"].shape == (180, 320, 3)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train_main(["--dataset", str(data), "--out", str(out)])
    # the renderer refit alone: the rest of the checkpoint kept, the renderer changed
    assert train_main(["--refine-renderer", str(out), "--dataset", str(data), "--out", str(tmp_path / "r"),
                       "--refine-steps", "2"]) == 0
    refit = load_backend(tmp_path / "r", runtime="torch")
    torch.testing.assert_close(refit.task.arm.gain, loaded.task.arm.gain)
    assert not torch.equal(refit.task.renderer.net[0].weight, loaded.task.renderer.net[0].weight)
    assert refit.provenance["renderer_refine"]["from"] == str(out)


def test_shipped_scene_has_the_real_spaces_and_steps_without_mujoco(monkeypatch):
    import gymnasium as gym
    import mujoco

    from cosmos3_robot.tasks import register_envs

    register_envs()
    learned = gym.make("cosmos3_robot/FrankaCube-v0")
    real = gym.make("cosmos3_robot/FrankaCubeReal-v0")
    assert learned.observation_space == real.observation_space and learned.action_space == real.action_space
    assert learned.spec.max_episode_steps == 200
    obs, _ = learned.reset(seed=0)  # the start frames come from the real scene
    policy = make_franka_policy("expert", seed=0)
    calls = []
    monkeypatch.setattr(mujoco, "mj_step", lambda *a, **k: calls.append("mj_step"))
    monkeypatch.setattr(FrankaCubeRealEnv, "step", lambda *a, **k: calls.append("step"))
    for _ in range(5):
        obs, reward, term, trunc, info = learned.step(policy.select_action(obs))
    assert calls == []  # no physics: every step is the learned model's (the policy's IK is its own kinematics)
    assert obs["observation.images.exterior_1_left"].shape == (180, 320, 3) and "disagreement" in info
    spec = load_spec("droid")
    assert np.all(obs["observation.state"] >= spec.state.lower) and np.all(obs["observation.state"] <= spec.state.upper)


def _grasp_episodes(chain, shifts, settle_to):
    """One synthetic episode per (hand-frame shift of the cube from a centred grasp, reading the fingers settle
    at): the arm still at HOME_QPOS, the command closing at step 5, the reading ramping to `settle_to`."""
    from cosmos3_robot.tasks.franka_cube.structured import CUBE, EE, GRIP, Q, WORLD_DIMS, YAW

    _, ee, R = forward(chain, HOME_QPOS[None])
    eps = []
    for shift, settle in zip(shifts, settle_to):
        w = np.zeros((20, WORLD_DIMS), np.float32)
        w[:, Q], w[:, EE] = HOME_QPOS, ee[0]
        w[:, YAW] = np.arctan2(R[0, 1, 0], R[0, 0, 0])  # the cube's faces square to the fingers
        w[:, CUBE] = ee[0] + R[0] @ (np.array([0.0, 0.0, 0.024]) + shift)
        w[5:, GRIP] = np.minimum(settle, 0.12 * np.arange(1, 16))
        action = np.zeros((20, 8))
        action[5:, 7] = 1.0
        eps.append({"world": w, "action": action})
    return eps


def test_grasp_limits_are_measured_between_caught_and_missed_grasps():
    from cosmos3_robot.tasks.franka_cube.train import estimate_grasp

    chain = chain_parameters()
    shifts = [np.zeros(3), [0.005, 0, 0], [0, 0.02, 0], [0, -0.02, 0],   # caught
              [0.03, 0, 0], [0, 0.04, 0]]                                 # across / along: closed on air
    eps = _grasp_episodes(chain, np.asarray(shifts, float), [0.36, 0.36, 0.36, 0.36, 0.9, 0.9])
    g = estimate_grasp(eps, chain)
    np.testing.assert_allclose(g["offset"], [0, 0, 0.024], atol=1e-3)  # the median caught grasp, in the hand
    assert 0.005 < g["across"] < 0.03 and 0.02 < g["along"] < 0.04  # between the caught and the missed
    assert g["hold"] == pytest.approx(0.36) and g["caught"] == 4 and g["missed_inside"] == 0
    with pytest.raises(ValueError, match="missed"):
        estimate_grasp(eps[:4], chain)  # only caught grasps: no limit can be measured


def test_grasp_constraint_carries_holds_drops_and_pushes_the_cube():
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.tasks.franka_cube.structured import CUBE, EE, GRIP, YAW, push_by_fingers

    task = load_backend("franka_cube", runtime="torch").task
    assert task.grasp is not None
    chain = task.config["chain"]
    world = _grasp_episodes(chain, [np.zeros(3)], [0.36])[0]["world"][None, [10, 11]]  # fingers on the cube
    world[:, :, GRIP] = task.grasp["hold"]
    _, ee, R = forward(chain, HOME_QPOS[None])
    world[:, :, CUBE] = ee[0] + R[0] @ np.asarray(task.grasp["offset"])
    lift = HOME_QPOS.copy()
    lift[3] += 0.1  # the elbow moves: the hand goes elsewhere
    assert task.holding(world[:, -1], np.array([1.0]))[0]
    hist = world.copy()
    for _ in range(4):
        nxt, _ = task.step(hist, np.r_[lift, 1.0][None], np.r_[HOME_QPOS, 1.0][None])
        hist = np.concatenate([hist[:, 1:], nxt[:, None]], 1)
    moved = nxt[0, EE] - world[0, -1, EE]
    assert np.linalg.norm(moved) > 0.01  # the hand went somewhere ...
    # ... with it
    np.testing.assert_allclose(nxt[0, CUBE] - nxt[0, EE], world[0, -1, CUBE] - world[0, -1, EE], atol=1e-5)
    assert abs(nxt[0, GRIP] - task.grasp["hold"]) < 1e-6  # the fingers stay on the cube: no drift open
    # let go in the air: it falls onto the table within a few steps
    for _ in range(6):
        nxt, _ = task.step(hist, np.r_[lift, 0.0][None], np.r_[lift, 1.0][None])
        hist = np.concatenate([hist[:, 1:], nxt[:, None]], 1)
    assert nxt[0, CUBE][2] == pytest.approx(CUBE_HALF, abs=1e-4) and world[0, -1, CUBE][2] > CUBE_HALF + 0.01
    # a finger coming down on the cube's edge pushes it off sideways; one clear of it does not
    cube = np.array([[0.5, 0.0, CUBE_HALF]])
    R0 = np.diag([1.0, -1.0, -1.0])[None]  # the hand pointing down, fingers along the base's y
    hand = np.array([[0.5, 0.01 - 0.0475, CUBE_HALF + 0.02]])  # one finger 1.5 cm inside the cube's edge
    pushed = push_by_fingers(cube, np.zeros(1), hand, R0, np.zeros(1))
    assert abs(pushed[0, 1] - cube[0, 1]) > 0.015 and pushed[0, 2] == cube[0, 2]
    clear = push_by_fingers(cube, np.zeros(1), np.array([[0.5, 0.0, 0.2]]), R0, np.zeros(1))
    np.testing.assert_array_equal(clear, cube)


def test_a_turned_cube_reaches_further_across_the_pads():
    """turned_reach: 0 with the cube's faces square to the hand, CUBE_HALF (sqrt 2 - 1) at 45 degrees, the same
    every 90 degrees; with `turned` grasp numbers a cube that far across is still held at 45 degrees, not square."""
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.tasks.franka_cube.structured import CUBE, GRIP, YAW, turned_reach

    chain = chain_parameters()
    world = _grasp_episodes(chain, [np.zeros(3)], [0.36])[0]["world"][[11]].copy()
    _, ee, R = forward(chain, world[:, :7])
    hand_yaw = np.arctan2(R[0, 1, 0], R[0, 0, 0])
    turned = np.repeat(world, 4, 0)
    turned[:, YAW] = hand_yaw + np.deg2rad([0, 45, 90, -45])  # (float32 world: reach 0 to 1e-9)
    np.testing.assert_allclose(turned_reach(chain, turned), CUBE_HALF * (np.sqrt(2) - 1) * np.array([0, 1, 0, 1]),
                               atol=1e-9)
    task = load_backend("franka_cube", runtime="torch").task
    task.grasp = {**task.grasp, "turned": True, "across": 0.015}
    turned[:, GRIP] = task.grasp["hold"]
    turned[:, CUBE] = ee[0] + R[0] @ (np.asarray(task.grasp["offset"]) + [0.02, 0, 0])  # 2 cm across the pads
    held = task.holding(turned, np.ones(4))
    assert held.tolist() == [False, True, False, True]
