import numpy as np
from scipy.spatial.transform import Rotation
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


def test_expert_episode_to_droid_layout_as_droids_readers_read_it(env, tmp_path):
    """A MuJoCo episode through `collect` into DROID's layout, read as DROID's code reads it (conftest's
    droid_reference_reads: parse_trajectory, validate_metadata_record, both MP4 readers, the RLDS builder)."""
    from conftest import droid_reference_reads

    from cosmos3_robot.eval.rollout import collect

    obs, _ = env.reset(seed=0)
    calibs = env.calibrations()
    writer = DroidWriter(tmp_path, "droid", calibrations={k: calibs[k] for k in ("exterior_1_left", "exterior_2_left")},
                         variant="joint_position", live_calibrations=env.calibrations, stereo=env.stereo,
                         robot_state_extras=env.robot_state_extras)
    expert = FrankaPickPlaceExpert(calibs["exterior_1_left"])
    env.max_episode_steps = 12
    collect(env, expert, 1, writer, progress=False, env_name="droid")
    env.max_episode_steps = 200
    folder = list_droid_episodes(tmp_path)[0]
    ep = read_droid_episode(folder)
    assert ep["action"].shape == (12, 8) and ep["state"].shape == (12, 14)
    assert ep["state"][-1, 10] < ep["state"][0, 10] - 0.05  # the arm moved toward the cube: the hand went down
    np.testing.assert_allclose(ep["calibrations"]["exterior_1_left"].camera_to_world,
                               calibs["exterior_1_left"].camera_to_world, atol=1e-9)
    record, steps, views = droid_reference_reads(folder)
    serials = ep["metadata"]["camera_serials"]
    assert {record[f"{r}_cam_serial"] for r in ("wrist", "ext1", "ext2")} == set(serials.values())
    assert record["ext1_cam_serial"] == serials["exterior_1_left"] and record["wrist_cam_serial"] == serials["wrist_left"]
    np.testing.assert_allclose(record["ext1_cam_extrinsics"], calibs["exterior_1_left"].to_droid(), atol=1e-9)
    # 1: DROID's readers' <serial>_left is our frame exactly (lossless video); _right is MuJoCo's right eye
    for name, serial in serials.items():
        left, right = views[serial]
        np.testing.assert_array_equal(left, ep["frames"][name])
        assert np.abs(right.astype(int) - left).mean() > 2, f"{name}: the right eye is a copy of the left"
    assert ep["metadata"]["cosmos3_right_eye"] == {n: "rendered" for n in serials}
    # the wrist camera's extrinsics at step t are those of the frame at step t (it moves with the arm)
    env.reset(seed=0)
    wrist = ep["arrays"][f"observation/camera_extrinsics/{serials['wrist_left']}_left"]
    np.testing.assert_allclose(wrist[0], env.calibrations()["wrist_left"].to_droid(), atol=1e-9)
    assert wrist.shape == (12, 6) and np.abs(wrist[-1] - wrist[0]).max() > 1e-3
    # 5: the right eye one baseline along the camera's x; the wrist camera in the hand's frame is fixed
    for name, baseline in (("exterior_1_left", 0.12), ("wrist_left", 0.063)):
        l_, r_ = (ep["arrays"][f"observation/camera_extrinsics/{serials[name]}_{eye}"] for eye in ("left", "right"))
        x_axis = Rotation.from_euler("xyz", l_[:, 3:]).as_matrix()[:, :, 0]
        np.testing.assert_allclose(r_[:, :3] - l_[:, :3], baseline * x_axis, atol=1e-6)
    offset = ep["arrays"][f"observation/camera_extrinsics/{serials['wrist_left']}_left_gripper_offset"]
    assert np.abs(offset - offset[0]).max() < 1e-6 and np.linalg.norm(offset[0, :3]) > 0.01
    a = ep["arrays"]
    assert a["observation/robot_state/joint_velocities"].shape == (12, 7)
    assert np.abs(a["observation/robot_state/joint_velocities"]).max() > 0.01  # the arm moved: measured, not zeros
    assert a["observation/robot_state/joint_torques_computed"].shape == (12, 7)
    np.testing.assert_allclose(a["action/target_gripper_position"], ep["action"][:, 7])
    assert a["action/target_cartesian_position"].shape == (12, 6) and not a["observation/timestamp/skip_action"].any()
    # the pose the commanded joints give is where the hand goes: near the next step's pose
    assert np.abs(a["action/target_cartesian_position"][:-1, :3] - ep["state"][1:, 8:11]).max() < 0.05
    import h5py
    with h5py.File(folder / "trajectory.h5") as h5:
        assert {"building", "scene_id", "fixed_tasks"} <= set(h5.attrs) and h5.attrs["cosmos3_imagined"] == False  # noqa: E712
    assert record["trajectory_length"] == 12 and steps[0]["gripper_position"].shape == (1,)
    np.testing.assert_array_equal(ep["arrays"]["action/joint_position"], ep["action"][:, :7])  # recorded, not derived
    np.testing.assert_array_equal(ep["arrays"]["action/cartesian_position"][:-1], ep["state"][1:, 8:])  # next pose
    assert ep["metadata"]["cosmos3_derived_actions"] == ["joint_velocity", "cartesian_position", "cartesian_velocity",
                                                         "gripper_velocity", "target_gripper_position",
                                                         "target_cartesian_position"]


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


def test_wait_and_turn_families(env):
    """expert-wait<k> holds the joints it reads, gripper open, for k steps before it looks; expert-turn<deg>
    grasps with the hand's yaw turned by deg from the expert's."""
    from cosmos3_robot.tasks import make_policy

    obs, _ = env.reset(seed=3)
    waiter, expert = make_policy("franka_cube", "expert-wait3", 3), make_policy("franka_cube", "expert", 3)
    for _ in range(3):
        a = waiter.select_action(obs)
        assert np.allclose(a[:7], obs["observation.state"][:7]) and a[7] == 0.0 and waiter.plan is None
        obs, *_ = env.step(a)
    assert not np.allclose(waiter.select_action(obs), obs["observation.state"][:7].tolist() + [0.0])
    turned = make_policy("franka_cube", "expert-turn45", 3)
    turned.select_action(obs), expert.select_action(obs)
    yaw = lambda p: Rotation.from_matrix(p.rot).as_euler("xyz")[2]  # noqa: E731
    assert abs(np.rad2deg(yaw(expert) - yaw(turned)) % 360 - 45) < 1e-6
    high, miss = make_policy("franka_cube", "expert-high10", 3), make_policy("franka_cube", "expert-miss4", 3)
    high.select_action(obs), miss.select_action(obs)
    assert np.isclose(high.plan[3][0][2] - expert.plan[3][0][2], 0.10)  # the carry waypoint
    assert np.isclose(np.linalg.norm(miss.plan[5][0][:2] - expert.plan[5][0][:2]), 0.04)  # the place waypoint


def test_object_emphasis_weighs_the_cube_and_target_only():
    from cosmos3_robot.tasks.franka_cube.train import object_emphasis

    frame = np.full((1, 48, 80, 3), 120, np.uint8)
    frame[0, 10:12, 20:22] = (220, 20, 20)  # a red cube, 2 px
    frame[0, 30:33, 50:53] = (20, 200, 20)  # a green target
    w = object_emphasis(30.0)(frame)[0]
    assert w[10, 20] == 30 and w[31, 51] == 30 and w[8, 18] == 30  # grown by 2 px
    assert w[0, 0] == 0 and w[20, 40] == 0 and (w > 0).sum() == 6 * 6 + 7 * 7
