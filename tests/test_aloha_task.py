"""The ALOHA transfer-cube task: registry, the expert's eyes and inverse kinematics, the learned scene's physics
rules, and (slow) the recipe end to end on a few collected episodes."""

import numpy as np
import pytest

from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.errors import UserError
from cosmos3_robot.tasks import make_policy, make_real_env, task_info
from cosmos3_robot.tasks.aloha.expert import LADDER, ArmIK, aloha_model, find_cube, top_calibration
from cosmos3_robot.tasks.aloha.structured import (CUBE, GRIPS, AlohaTransferCubeWorld, grasp_points, hand_frames,
                                                  task_config)


def test_registered_with_its_old_name(capsys):
    info = task_info("aloha", warn=True)
    assert info.name == "aloha_transfer_cube" and info.learned_id == "cosmos3_robot/AlohaTransferCube-v0"
    assert "deprecated" in capsys.readouterr().err
    assert len(LADDER) >= 6
    with pytest.raises(UserError, match="expert-drop<n> takes n from 0 to 60"):
        make_policy("aloha_transfer_cube", "expert-drop90")
    with pytest.raises(UserError, match="not a transfer-cube policy"):
        make_policy("aloha_transfer_cube", "expert-wobble")


def test_inverse_kinematics_reaches_a_pose():
    model = aloha_model()
    ik = ArmIK(model, "right")
    q0 = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])
    p0, R0 = ik.pose(q0)
    goal = p0 + np.array([-0.08, 0.05, -0.1])
    q = ik.solve(q0, goal, R0, iters=200)
    p, R = ik.pose(q)
    assert np.linalg.norm(p - goal) < 1e-3 and np.abs(R - R0).max() < 1e-2


def test_expert_finds_the_cube_in_the_top_frame():
    env = make_real_env("aloha_transfer_cube")
    try:
        for seed in (3, 11):
            obs, info = env.reset(seed=seed)
            for _ in range(30):  # gym-aloha drops the cube from 5 cm: let it land
                obs, *_, info = env.step(obs["observation.state"])
            seen = find_cube(obs["observation.images.top"], top_calibration())
            assert np.linalg.norm(seen[:2] - info["state"][16:18]) < 0.005
    finally:
        env.close()


def _world(grasp=True):
    import torch

    torch.manual_seed(0)  # the tower is untrained here: the rules under test must hold whatever it says
    cfg = task_config()
    if grasp:
        cfg["grasp"] = {"right": {"offset": [0.006, 0.0, -0.016], "box": [[-0.02, 0.02]] * 3, "hold": [0.52, 0.8]},
                        "left": {"depth": [-0.005, 0.07], "height": 0.011, "centred": 0.003, "slide": 0.051},
                        "fall": 0.0039}
    return AlohaTransferCubeWorld(cfg, load_spec("aloha"))


def _state_with_cube_in_right_hand(world, lift=0.15):
    w = np.zeros((1, 17), np.float32)
    w[0, :14] = [0, -0.96, 1.16, 0, -0.3, 0, 1.0, 0, -0.6, 0.9, 0, 0.3, 0, 0.6]
    pts = grasp_points(world.chains, w)
    R = hand_frames(world.chains, w)[:, 1]
    w[0, CUBE] = pts[0, 1] + R[0] @ np.asarray(world.grasp["right"]["offset"])
    return w


def test_a_held_cube_moves_with_the_hand_and_a_free_one_falls():
    world = _world()
    w = _state_with_cube_in_right_hand(world)
    assert w[0, CUBE][2] > 0.05
    action = w[:, :14].astype(np.float64).copy()
    action[0, 7] += 0.05  # the right arm's waist turns; its gripper command is closed (0)
    action[0, GRIPS[1]] = 0.0
    hist = np.stack([w, w], 1)
    nxt, _ = world.step(hist, action, action)
    pts_before, pts_after = grasp_points(world.chains, w)[0, 1], grasp_points(world.chains, nxt)[0, 1]
    assert np.linalg.norm(pts_after - pts_before) > 1e-3  # the arm moved
    np.testing.assert_allclose(nxt[0, CUBE] - w[0, CUBE], pts_after - pts_before, atol=1e-5)
    opened = action.copy()
    opened[0, GRIPS[1]] = 1.0  # let go: the cube falls, and keeps falling onto the table
    z = [w[0, CUBE][2]]
    hist = np.stack([w, w], 1)
    for _ in range(80):
        nxt, _ = world.step(hist, opened, opened)
        hist = np.stack([hist[:, -1], nxt], 1)
        z.append(nxt[0, CUBE][2])
    # it falls (gravity) to the table and never through it; on the table the tower moves it (untrained here, it
    # may nudge it up by up to MAX_CUBE_STEP, and the next steps bring it down again)
    assert z[5] < z[0] and max(np.diff(z[:7])) <= 0 and min(z) >= 0.02 and min(z[8:]) < 0.025


def test_reward_is_the_left_fingers_touch_in_the_air():
    world = _world()
    w = _state_with_cube_in_right_hand(world)
    assert world.reward(w)[0] == 0.0  # the right hand's grip is not a hand-over
    pts, R = grasp_points(world.chains, w)[0, 0], hand_frames(world.chains, w)[0, 0]
    w[0, CUBE] = pts + R @ np.array([0.03, 0.0, 0.0])  # between the left fingers, centred
    w[0, GRIPS[0]] = 0.6  # closed down to a slide of 0.042 m, inside `slide`
    assert w[0, CUBE][2] > 0.05 and world.reward(w)[0] == 1.0
    w[0, GRIPS[0]] = 1.0  # fingers wide open: no touch
    assert world.reward(w)[0] == 0.0
    w[0, GRIPS[0]] = 0.6
    w[0, CUBE] = pts + R @ np.array([0.03, 0.01, 0.0])  # off the fingers' middle: not yet centred on both
    assert world.reward(w)[0] == 0.0


@pytest.mark.slow
def test_recipe_end_to_end(tmp_path):
    """Collect 4 expert episodes with frames and 12 state-only expert-mix ones (the grasp numbers need 3 hand-overs,
    the slip hazard 100 held steps), fit a tiny checkpoint, step it as a Gymnasium env from a real start."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from cosmos3_robot.tasks import register_envs
    from cosmos3_robot.tasks.aloha.train import _collect, train

    paths = _collect(tmp_path / "data", 4, seed=0, policy="expert", progress=False)
    assert all(p.exists() for p in paths)
    # the measured numbers from state-only episodes (cheap: only each first frame is rendered)
    _collect(tmp_path / "states", 12, seed=0, policy="expert-mix", progress=False, frames=False)
    train(tmp_path / "data", tmp_path / "ck", servo_steps=50, tower_epochs=1, render_steps=5,
          states=tmp_path / "states", progress=False)
    register_envs()
    env = gym.make("cosmos3_robot/AlohaTransferCube-v0", backend=str(tmp_path / "ck"))
    obs, _ = env.reset(seed=0)
    assert obs["observation.images.top"].shape == (480, 640, 3) and obs["observation.state"].shape == (14,)
    check_env(env.unwrapped, skip_render_check=True)


def test_train_sim_checks_its_inputs_before_any_work(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from cosmos3_robot.cli import main, run_step
    from cosmos3_robot.errors import UserError
    from cosmos3_robot.tasks import REGISTRY

    assert main(["train-sim", "--task", "pusht", "--dataset", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--collect" in err
    done = tmp_path / "done"
    done.mkdir()
    (done / "config.json").write_text("{}")
    assert main(["train-sim", "--task", "franka_cube", "--dataset", str(tmp_path), "--out", str(done)]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["train-sim", "--task", "aloha", "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no collected episodes" in capsys.readouterr().err  # the alias reaches the recipe, which checks its data
    monkeypatch.setitem(REGISTRY, "pusht", replace(REGISTRY["pusht"], trainer=None))
    assert main(["train-sim", "--task", "pusht", "--dataset", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no learned-simulator recipe" in err and "aloha_transfer_cube" in err and "franka_cube" in err
    with pytest.raises(UserError, match="stopped: `cosmos3-robot eval --policies nosuch"):  # a failed step ends a recipe
        run_step(["eval", "--policies", "nosuch", "--out", str(tmp_path / "e")])


def test_rerun_draws_the_right_hands_path():
    from cosmos3_robot.embodiments.world_frame import end_effector_path

    state = np.array([[0, -0.96, 1.16, 0, -0.3, 0, 1.0, 0, -0.96, 1.16, 0, -0.3, 0, 1.0]], np.float32)
    path = end_effector_path(load_spec("aloha"), np.repeat(state, 3, 0))
    ik = ArmIK(aloha_model(), "right")
    np.testing.assert_allclose(path[0], ik.pose(state[0, 7:13].astype(np.float64))[0], atol=1e-6)


def test_real_scene_can_render_only_each_first_frame():
    with pytest.raises(UserError, match="frames='all'"):
        make_real_env("aloha_transfer_cube", frames="all")
    first, every = (make_real_env("aloha_transfer_cube", max_episode_steps=20, frames=f) for f in ("first", "every"))
    try:
        runs = []
        for env in (first, every):
            pol = make_policy("aloha_transfer_cube", "expert", seed=5)
            pol.reset(5)
            obs, _ = env.reset(seed=5)
            frames, states = [obs["observation.images.top"]], [obs["observation.state"]]
            for _ in range(15):
                obs, *_ = env.step(pol.select_action(obs))
                frames.append(obs["observation.images.top"])
                states.append(obs["observation.state"])
            runs.append((np.stack(frames), np.stack(states)))
        (f_first, s_first), (f_every, s_every) = runs
        assert all((f == f_first[0]).all() for f in f_first)  # the reset's frame, repeated
        assert not (f_every[-1] == f_every[0]).all()  # the arms moved in view
        np.testing.assert_array_equal(f_first[0], f_every[0])
        np.testing.assert_array_equal(s_first, s_every)  # the same physics
        obs, _ = first.reset(seed=6)  # a new episode draws its own first frame
        assert not (obs["observation.images.top"] == f_first[0]).all()
    finally:
        first.close()
        every.close()


def test_closing_left_fingers_pull_only_a_cube_within_their_span():
    world = _world()
    w = _state_with_cube_in_right_hand(world)
    pts, R = grasp_points(world.chains, w)[0, 0], hand_frames(world.chains, w)[0, 0]
    w[0, CUBE] = pts + R @ np.array([0.03, 0.2, 0.0])  # in line with the fingers' closing, 20 cm past them
    w[0, GRIPS[0]] = 0.9
    action = w[:, :14].astype(np.float64).copy()
    action[0, GRIPS[0]] = 0.0  # the left fingers close
    action[0, GRIPS[1]] = 1.0
    nxt, _ = world.step(np.stack([w, w], 1), action, action)
    assert np.linalg.norm(nxt[0, CUBE] - w[0, CUBE]) < 0.031  # the tower's step at most, never a pull to the hand


def test_a_shaken_right_hand_can_lose_the_cube_and_the_table_stops_a_hand():
    import torch

    world = _world()
    w = _state_with_cube_in_right_hand(world)
    action = w[:, :14].astype(np.float64).copy()
    action[0, 7] += 0.05
    action[0, GRIPS[1]] = 0.0
    hist = np.stack([w, w], 1)
    draws = lambda shape: torch.zeros((1, *shape))  # noqa: E731  the median draw: u = 0.5
    world.grasp["right"]["slip"] = {"acc": [0.0, 0.01], "hazard": [0.4, 0.6]}
    nxt, _ = world.step(hist, action, action, noise=draws)  # a slow hand: 0.5 > 0.4, it holds
    carried = nxt[0, CUBE] - w[0, CUBE]
    world.grasp["right"]["slip"] = {"acc": [0.0, 0.01], "hazard": [0.6, 0.6]}  # 0.5 < 0.6: it slips
    lost, _ = world.step(hist, action, action, noise=draws)
    assert np.linalg.norm(lost[0, CUBE] - w[0, CUBE] - carried) > 0.005  # not carried with the hand
    assert lost[0, CUBE][2] < w[0, CUBE][2] and not world.holding(lost, action)[0, 1]  # it left the grip, down
    # the table: a hand the servo would take below `floor` stops at it
    world.grasp.pop("slip", None)
    world.grasp["right"].pop("slip")
    down = action.copy()
    down[0, 8] += 0.6  # the right shoulder pitches down
    free, _ = world.step(hist, down, down)
    z_free = grasp_points(world.chains, free)[0, 1, 2]
    world.grasp["floor"] = float(z_free + 0.03)
    stopped, _ = world.step(hist, down, down)
    z0, z = grasp_points(world.chains, w)[0, 1, 2], grasp_points(world.chains, stopped)[0, 1, 2]
    assert z0 > world.grasp["floor"] and z >= world.grasp["floor"] - 1e-6 and z < z0


def test_slip_numbers_from_state_only_episodes(tmp_path):
    from cosmos3_robot.tasks.aloha.train import SLIP_ACC, _collect, estimate_slip, load

    paths = _collect(tmp_path, 3, seed=0, policy="expert-noise3", progress=False, frames=False)
    paths += _collect(tmp_path, 2, seed=0, policy="expert", progress=False, frames=False)
    with np.load(paths[0]) as z:
        assert "frames" not in z and z["state"].shape[1] == 14
    with pytest.raises(UserError, match="state-only episode"):
        load(tmp_path)
    world = _world()
    slip = estimate_slip(world, load(tmp_path, frames=False))
    hazard = np.asarray(slip["hazard"])
    assert len(hazard) == len(SLIP_ACC) and hazard[0] == 0.0 and (np.diff(hazard) >= -1e-9).all()
    assert sum(slip["steps"]) >= 100 and (hazard <= 1).all()
