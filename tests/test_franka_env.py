import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from cosmos3_robot.datasets import DroidWriter, list_droid_episodes, read_droid_episode
from cosmos3_robot.embodiments import ActionError
from cosmos3_robot.tasks import make_real_env
from cosmos3_robot.tasks.franka_cube import FrankaCubeRealEnv
from cosmos3_robot.tasks.franka_cube.real import HOME_QPOS, FrankaIK
from cosmos3_robot.eval.rollout import rollout
from cosmos3_robot.tasks.franka_cube.expert import GREEN, RED, FrankaPickPlaceExpert, find_on_table

HOLD = np.r_[HOME_QPOS, 0.0].astype(np.float32)


@pytest.fixture(scope="module")
def env():
    e = FrankaCubeRealEnv(max_episode_steps=120)
    yield e
    e.close()


def test_franka_passes_check_env_with_droid_keys(env):
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"observation.images.exterior_1_left", "observation.images.exterior_2_left",
                        "observation.images.wrist_left", "observation.state"}
    assert obs["observation.images.wrist_left"].shape == (180, 320, 3)
    assert obs["observation.state"].shape == (14,)  # joints 7, gripper 1, cartesian 6 (DROID robot_state)
    assert make_real_env("droid").embodiment.name == "droid"


def test_franka_reset_is_deterministic_and_restores_state(env):
    a, info_a = env.reset(seed=3)
    env.step(env.action_space.sample())
    b, info_b = env.reset(seed=3)
    np.testing.assert_array_equal(a["observation.images.exterior_1_left"], b["observation.images.exterior_1_left"])
    np.testing.assert_array_equal(info_a["state"], info_b["state"])
    assert not np.allclose(env.reset(seed=4)[1]["cube"], info_a["cube"])
    env.reset(seed=3)
    target = HOLD.copy()
    target[0] += 0.3
    env.step(target)
    snapshot = env.get_state()
    first = [env.step(target)[0]["observation.state"] for _ in range(2)]
    env.reset(options={"state": snapshot})
    np.testing.assert_array_equal(env.get_state(), snapshot)
    second = [env.step(target)[0]["observation.state"] for _ in range(2)]
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="expected"):
        env.reset(options={"state": np.zeros(3)})


def test_franka_bad_actions_name_the_field():
    env = FrankaCubeRealEnv(out_of_limits="reject")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(10, np.float32))
    bad = HOLD.copy()
    bad[7] = np.nan
    with pytest.raises(ActionError, match="gripper_position"):
        env.step(bad)
    with pytest.raises(ValueError, match="action_variant"):
        FrankaCubeRealEnv(action_variant="ee_velocity")
    env.close()


def test_calibration_projects_the_cube_where_it_is_drawn(env):
    obs, info = env.reset(seed=1)
    for name, calib in env.calibrations().items():
        u, v = calib.project(info["cube"][None])[0]
        image = obs[f"observation.images.{name}"]
        if not (0 <= u < image.shape[1] and 0 <= v < image.shape[0]):
            continue
        r, g, b = image[int(round(v)), int(round(u))].astype(int)
        assert r > 100 and r > 2 * g and r > 2 * b, (name, (u, v), (r, g, b))  # the red cube's pixel
    # and back: the expert's ray casting finds the cube and target to within a few millimetres
    calib = env.calibrations()["exterior_1_left"]
    cube, _ = find_on_table(obs["observation.images.exterior_1_left"], calib, RED, 0.025)
    target, _ = find_on_table(obs["observation.images.exterior_1_left"], calib, GREEN, 0.0)
    assert np.linalg.norm(cube - info["cube"][:2]) < 0.006
    assert np.linalg.norm(target - info["target"][:2]) < 0.006


def test_ik_reaches_a_pose():
    ik = FrankaIK()
    pos, rot = ik.forward(HOME_QPOS)
    goal = pos + np.array([0.08, -0.1, -0.15])
    q = ik.solve(HOME_QPOS, goal, rot, iters=100)
    reached, r = ik.forward(q)
    assert np.linalg.norm(reached - goal) < 1e-3 and np.allclose(r, rot, atol=1e-2)


def test_cartesian_actions_move_the_end_effector():
    env = FrankaCubeRealEnv(action_variant="cartesian_position")
    obs, _ = env.reset(seed=0)
    start = obs["observation.state"][8:14].astype(np.float64)
    goal = start.copy()
    goal[2] -= 0.05
    for _ in range(6):
        obs, *_ = env.step(np.r_[goal, 0.0].astype(np.float32))
    assert abs(obs["observation.state"][10] - goal[2]) < 0.01
    env.close()


@pytest.mark.slow
def test_expert_picks_and_places():
    env = FrankaCubeRealEnv(max_episode_steps=110)
    obs, _ = env.reset(seed=0)
    expert = FrankaPickPlaceExpert(env.calibrations()["exterior_1_left"])
    results = [rollout(env, expert, seed=s)["success"] for s in range(3)]
    assert sum(results) >= 2, results


def test_expert_episode_to_droid_layout_with_calibration(env, tmp_path):
    from conftest import droid_reference_reads

    obs, _ = env.reset(seed=0)
    calibs = env.calibrations()
    writer = DroidWriter(tmp_path, "droid", calibrations={k: calibs[k] for k in ("exterior_1_left", "exterior_2_left")},
                         variant="joint_position", live_calibrations=env.calibrations)
    expert = FrankaPickPlaceExpert(calibs["exterior_1_left"])

    def on_step(o, action, reward, terminated, info):
        writer.add_frame(o, action, reward, info["is_success"], env.embodiment.task)

    rollout(env, expert, seed=0, max_steps=12, on_step=on_step)
    writer.save_episode(seed=0, policy=expert.name)
    ep = read_droid_episode(list_droid_episodes(tmp_path)[0])
    assert ep["action"].shape == (12, 8) and ep["state"].shape == (12, 14)
    # the arm moved toward the cube: the end effector went down
    assert ep["state"][-1, 10] < ep["state"][0, 10] - 0.05
    np.testing.assert_allclose(ep["calibrations"]["exterior_1_left"].camera_to_world,
                               calibs["exterior_1_left"].camera_to_world, atol=1e-9)
    # DROID's own reads (parse_trajectory, the RLDS builder) find every key they need, key by key
    record, steps = droid_reference_reads(list_droid_episodes(tmp_path)[0])
    serials = ep["metadata"]["camera_serials"]
    assert {record[f"{r}_cam_serial"] for r in ("wrist", "ext1", "ext2")} == set(serials.values())
    assert record["ext1_cam_serial"] == serials["exterior_1_left"] and record["wrist_cam_serial"] == serials["wrist_left"]
    np.testing.assert_allclose(record["ext1_cam_extrinsics"], calibs["exterior_1_left"].to_droid(), atol=1e-9)
    wrist = ep["arrays"][f"observation/camera_extrinsics/{serials['wrist_left']}_left"]
    assert wrist.shape == (12, 6) and np.abs(wrist[-1] - wrist[0]).max() > 1e-3  # the wrist camera moved with the arm
    assert record["trajectory_length"] == 12 and steps[0]["gripper_position"].shape == (1,)
    np.testing.assert_array_equal(ep["arrays"]["action/joint_position"], ep["action"][:, :7])  # recorded, not derived
    np.testing.assert_array_equal(ep["arrays"]["action/cartesian_position"][:-1], ep["state"][1:, 8:])  # next pose
    assert ep["metadata"]["cosmos3_derived_actions"] == ["joint_velocity", "cartesian_position", "cartesian_velocity",
                                                         "gripper_velocity"]


def test_render_only_the_cameras_a_run_needs():
    env = FrankaCubeRealEnv(cameras=["exterior_1_left"], image_size=(96, 128), max_episode_steps=3)
    obs, _ = env.reset(seed=1)
    assert set(obs) == {"observation.images.exterior_1_left", "observation.state"}
    assert obs["observation.images.exterior_1_left"].shape == (96, 128, 3) and env.observation_space.contains(obs)
    env.renders = 0
    env.step(obs["observation.state"][:8])
    assert env.renders == env.renders_per_step == 1
    assert env.calibrations()["exterior_1_left"].width == 128  # intrinsics follow the rendered size
    blind = FrankaCubeRealEnv(cameras=[])
    obs, _ = blind.reset(seed=1)
    assert set(obs) == {"observation.state"} and blind.renders == 0 and blind.render() is None
    with pytest.raises(ValueError, match=r"\['top'\] not in the droid spec"):
        FrankaCubeRealEnv(cameras=["top"])
    env.close(), blind.close()
