import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cosmos3_robot.embodiments import (
    FrameAlignment,
    actions_to_frame_rate,
    chunk_actions,
    chunk_frame_windows,
    decode_indices,
    load_spec,
    matrix_to_rot6d,
    poses_to_deltas,
    resample,
    resample_rotations,
    resample_vector,
    unchunk_actions,
)


@pytest.mark.parametrize("hz, fps, k", [(15, 5, 3), (50, 25, 2), (10, 10, 1)])
def test_step_frame_mapping(hz, fps, k):
    al = FrameAlignment(hz, fps)
    assert al.steps_per_frame == k
    steps = np.arange(30)
    np.testing.assert_array_equal(al.frame_for_step(steps), steps // k)
    frames = np.arange(10)
    np.testing.assert_array_equal(al.step_for_frame(frames), frames * k)
    np.testing.assert_array_equal(al.frame_for_step(al.step_for_frame(frames)), frames)
    np.testing.assert_allclose(al.frame_timestamps(4), al.step_timestamps(4 * k)[::k])
    assert al.num_frames(3 * k) == 4  # T actions at frame rate -> T+1 frames


def test_from_spec():
    al = FrameAlignment.from_spec(load_spec("droid"))
    assert (al.control_hz, al.video_fps) == (15, 15)


def test_decode_30_at_15_keeps_every_other_frame():
    np.testing.assert_array_equal(decode_indices(10, 30, 15), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(decode_indices(9, 15, 5), [0, 3, 6])
    assert decode_indices(100, 30, 30).tolist() == list(range(100))
    with pytest.raises(ValueError, match="cannot add frames"):
        decode_indices(10, 15, 30)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 100), d=st.integers(1, 12), chunk=st.integers(1, 40))
def test_chunk_round_trip(n, d, chunk):
    a = np.random.default_rng(n * 100 + d).normal(size=(n, d)).astype(np.float32)
    chunks, mask = chunk_actions(a, chunk)
    assert chunks.shape == (-(-n // chunk), chunk, d)
    assert mask.sum() == n and np.all(chunks[~mask] == 0)
    np.testing.assert_array_equal(unchunk_actions(chunks, mask), a)
    windows = chunk_frame_windows(n, chunk)
    assert len(windows) == len(chunks)
    for (start, stop), m in zip(windows, mask):
        assert stop - start == m.sum() + 1  # T actions span T+1 frames
    assert windows[0][0] == 0 and windows[-1][1] == n + 1


@settings(max_examples=30, deadline=None)
@given(hz=st.sampled_from([10.0, 15.0, 50.0]), k=st.integers(1, 4), n=st.integers(2, 30))
def test_resample_up_then_down_is_identity(hz, k, n):
    t = np.arange(n) / hz
    values = np.random.default_rng(n).normal(size=(n, 3))
    fine_t = np.arange((n - 1) * k + 1) / (hz * k)
    fine = resample(t, values, fine_t)
    np.testing.assert_allclose(fine[::k], values, atol=1e-9)
    np.testing.assert_allclose(resample(fine_t, fine, t), values, atol=1e-9)


def test_resample_rotations_uses_slerp_not_linear_angles():
    # 170 deg -> -170 deg about z: the short way passes 180 deg, linear-on-angles would pass 0.
    rots = Rotation.from_euler("z", [[170], [-170]], degrees=True)
    mid = resample_rotations([0.0, 1.0], rots, [0.5])
    assert abs(abs(mid.as_euler("xyz", degrees=True)[0, 2]) - 180) < 1e-6


def test_resample_vector_state_droid():
    spec = load_spec("droid")
    n = 10
    t = np.arange(n) / 15.0
    rng = np.random.default_rng(0)
    rots = Rotation.random(n, random_state=1)
    state = np.concatenate([rng.normal(size=(n, 7)), rng.uniform(size=(n, 1)), rng.normal(size=(n, 3)),
                            rots.as_euler("xyz")], axis=1)
    same = resample_vector(spec.state, t, state, t)
    np.testing.assert_allclose(same[:, :11], state[:, :11], atol=1e-9)
    np.testing.assert_allclose(Rotation.from_euler("xyz", same[:, 11:]).as_matrix(), rots.as_matrix(), atol=1e-9)
    with pytest.raises(ValueError, match="field 'ee_translation' is delta"):
        resample_vector(spec.action, t, np.zeros((n, 10)), t)
    with pytest.raises(ValueError, match="extrapolation"):
        resample(t, state, [t[-1] + 1])


def test_actions_to_frame_rate_composes_deltas():
    """15 Hz delta actions folded to 5 fps equal the deltas of the subsampled poses."""
    spec = load_spec("droid")
    n = 31  # 30 actions -> 10 frames at k = 3
    rng = np.random.default_rng(0)
    xyz = np.cumsum(rng.normal(scale=0.01, size=(n, 3)), axis=0)
    rots = Rotation.from_rotvec(np.cumsum(rng.normal(scale=0.05, size=(n, 3)), axis=0))
    rot6 = matrix_to_rot6d(rots.as_matrix())
    grip = rng.uniform(size=n)
    fine = np.concatenate([poses_to_deltas(xyz, rot6, "rot6d"), grip[1:, None]], axis=1)
    coarse = actions_to_frame_rate(fine, spec.action, 3)
    expected = np.concatenate([poses_to_deltas(xyz[::3], rot6[::3], "rot6d"), grip[3::3, None]], axis=1)
    np.testing.assert_allclose(coarse, expected, atol=1e-9)


def test_actions_to_frame_rate_velocity_mean():
    spec = load_spec("droid")
    v = np.arange(12 * 8, dtype=float).reshape(12, 8)
    out = actions_to_frame_rate(v, spec.actions["joint_velocity"], 4)
    np.testing.assert_allclose(out, v.reshape(3, 4, 8).mean(1))
    with pytest.raises(ValueError, match="groups of steps_per_frame=5"):
        actions_to_frame_rate(v, spec.actions["joint_velocity"], 5)
