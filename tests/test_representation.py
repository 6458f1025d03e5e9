import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cosmos3_robot.embodiments import (
    canonical_to_cartesian,
    cartesian_to_canonical,
    convert_gripper,
    deltas_to_poses,
    matrix_to_rot6d,
    pose_to_matrix,
    poses_to_deltas,
    rot6d_to_matrix,
)


def random_trajectory(seed, n=20):
    rng = np.random.default_rng(seed)
    xyz = np.cumsum(rng.normal(scale=0.02, size=(n, 3)), axis=0) + [0.5, 0.0, 0.3]
    rots = Rotation.random(n, random_state=seed)
    return xyz, rots


def test_rot6d_is_first_two_columns():
    m = Rotation.from_euler("xyz", [0.1, -0.4, 1.2]).as_matrix()
    r6 = matrix_to_rot6d(m)
    np.testing.assert_allclose(r6, [m[0, 0], m[1, 0], m[2, 0], m[0, 1], m[1, 1], m[2, 1]])
    np.testing.assert_allclose(rot6d_to_matrix(r6), m, atol=1e-12)


def test_rot6d_gram_schmidt_projects_noisy_input_to_a_rotation():
    m = Rotation.from_euler("xyz", [0.3, 0.2, -0.7]).as_matrix()
    noisy = matrix_to_rot6d(m) * 1.7 + np.array([0.01, -0.02, 0.0, 0.03, 0.0, 0.01])
    out = rot6d_to_matrix(noisy)
    np.testing.assert_allclose(out @ out.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(out) == pytest.approx(1.0)
    np.testing.assert_allclose(out, m, atol=0.05)


def test_rot6d_degenerate_input_errors():
    with pytest.raises(ValueError, match="parallel"):
        rot6d_to_matrix([1, 0, 0, 2, 0, 0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), frame=st.sampled_from(["base", "ee"]),
       fmt=st.sampled_from(["euler_xyz", "quat_xyzw", "matrix", "rot6d"]))
def test_delta_round_trip(seed, frame, fmt):
    xyz, rots = random_trajectory(seed)
    rot = {"euler_xyz": rots.as_euler("xyz"), "quat_xyzw": rots.as_quat(), "matrix": rots.as_matrix(),
           "rot6d": matrix_to_rot6d(rots.as_matrix())}[fmt]
    deltas = poses_to_deltas(xyz, rot, fmt, frame)
    assert deltas.shape == (len(xyz) - 1, 9)
    xyz2, rot2 = deltas_to_poses(xyz[0], rot[0], deltas, fmt, frame)
    np.testing.assert_allclose(xyz2, xyz, atol=1e-9)
    back = {"euler_xyz": lambda r: Rotation.from_euler("xyz", r), "quat_xyzw": Rotation.from_quat,
            "matrix": Rotation.from_matrix, "rot6d": lambda r: Rotation.from_matrix(rot6d_to_matrix(r))}[fmt](rot2)
    np.testing.assert_allclose(back.as_matrix(), rots.as_matrix(), atol=1e-9)


def test_base_and_ee_frames_differ_and_match_hand_math():
    # Rotate 90 deg about z, then move 1 m along the end-effector's x axis.
    r0 = Rotation.from_euler("z", 90, degrees=True)
    xyz = np.array([[0.0, 0, 0], [0.0, 1.0, 0]])  # ee x axis points along world y
    rot = np.stack([r0.as_euler("xyz")] * 2)
    base = poses_to_deltas(xyz, rot, "euler_xyz", "base")
    ee = poses_to_deltas(xyz, rot, "euler_xyz", "ee")
    np.testing.assert_allclose(base[0, :3], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(ee[0, :3], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(base[0, 3:], [1, 0, 0, 0, 1, 0], atol=1e-12)  # identity rotation


def test_base_delta_composes_like_droid_add_poses():
    # DROID add_angles: new = delta * source (scipy, euler "xyz").
    src = Rotation.from_euler("xyz", [0.2, -0.1, 0.4])
    dst = Rotation.from_euler("xyz", [0.25, 0.05, 0.1])
    d = poses_to_deltas(np.zeros((2, 3)), np.stack([src.as_euler("xyz"), dst.as_euler("xyz")]), "euler_xyz")
    d_rot = Rotation.from_matrix(rot6d_to_matrix(d[0, 3:]))
    np.testing.assert_allclose((d_rot * src).as_matrix(), dst.as_matrix(), atol=1e-12)


def test_pose_to_matrix():
    m = pose_to_matrix([[1, 2, 3]], [[0, 0, np.pi / 2]], "euler_xyz")[0]
    np.testing.assert_allclose(m[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(m[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize("gripper_open", [0.0, 1.0])
def test_droid_cartesian_to_canonical_round_trip(gripper_open):
    rng = np.random.default_rng(3)
    xyz, rots = random_trajectory(7, n=40)
    cartesian = np.concatenate([xyz, rots.as_euler("xyz")], axis=1)
    gripper = rng.uniform(0, 1, size=40)
    actions = cartesian_to_canonical(cartesian, gripper, gripper_open=gripper_open)
    assert actions.shape == (39, 10)
    # canonical gripper is 0 = open: the action carries the next frame's gripper in that convention
    expected_g = gripper[1:] if gripper_open == 0 else 1 - gripper[1:]
    np.testing.assert_allclose(actions[:, 9], expected_g)
    cart2, g2 = canonical_to_cartesian(cartesian[0], gripper[0], actions, gripper_open=gripper_open)
    np.testing.assert_allclose(cart2[:, :3], cartesian[:, :3], atol=1e-6)
    np.testing.assert_allclose(
        Rotation.from_euler("xyz", cart2[:, 3:]).as_matrix(), rots.as_matrix(), atol=1e-6
    )
    np.testing.assert_allclose(cart2[:, 3:], cartesian[:, 3:], atol=1e-6)  # same euler branch
    np.testing.assert_allclose(g2, gripper, atol=1e-12)


def test_convert_gripper_and_bad_convention():
    np.testing.assert_allclose(convert_gripper([0.0, 0.3, 1.0], 1, 0), [1.0, 0.7, 0.0])
    np.testing.assert_allclose(convert_gripper([0.3], 0, 0), [0.3])
    with pytest.raises(ValueError, match="open_from = 2"):
        convert_gripper([0.5], 2, 0)


def test_mismatched_lengths_error():
    with pytest.raises(ValueError, match="gripper has 3 steps, cartesian has 4"):
        cartesian_to_canonical(np.zeros((4, 6)), np.zeros(3))
