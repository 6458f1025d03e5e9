import numpy as np
import pytest
import torch

from cosmos3_robot.embodiments import ActionError, load_spec, validate_action


def droid_action(n=None):
    a = np.array([0.01, -0.02, 0.0, 1, 0, 0, 0, 1, 0, 0.5], dtype=np.float32)
    return a if n is None else np.tile(a, (n, 1))


def test_valid_action_and_chunk_pass_through():
    spec = load_spec("droid")
    out = validate_action(spec, droid_action())
    assert out.dtype == np.float32 and out.shape == (10,)
    np.testing.assert_array_equal(out, droid_action())
    assert validate_action(spec, droid_action(16)).shape == (16, 10)
    assert validate_action(spec, torch.tensor(droid_action(4))).shape == (4, 10)


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(9, np.float32), r"shape \(9,\), expected \(10,\) or \(T, 10\)"),
        (np.zeros((2, 3, 10), np.float32), r"shape \(2, 3, 10\)"),
        (np.array(["a"] * 10), "dtype <U1 is not numeric"),
        (np.ones(10, dtype=bool), "dtype bool is not numeric"),
    ],
)
def test_bad_shape_and_dtype(action, match):
    with pytest.raises(ActionError, match=match):
        validate_action(load_spec("droid"), action)


def test_nan_and_inf_name_the_field_and_step():
    spec = load_spec("droid")
    a = droid_action(5)
    a[3, 5] = np.nan
    with pytest.raises(ActionError, match=r"field 'ee_rotation' has nan at step 3 dim 2 \(ee_rotation.r20\)"):
        validate_action(spec, a)
    b = droid_action()
    b[9] = np.inf
    with pytest.raises(ActionError, match="field 'gripper' has inf at dim 0"):
        validate_action(spec, b)


def test_out_of_limits_policies():
    spec = load_spec("droid")
    a = droid_action()
    a[0] = 0.5  # > max_lin_delta 0.075 m
    clipped = validate_action(spec, a)
    assert clipped[0] == pytest.approx(0.075) and clipped[1] == a[1]
    assert a[0] == 0.5  # the caller's array is not modified
    with pytest.raises(ActionError, match=r"field 'ee_translation' value 0.5 at dim 0 \(ee_translation.x\) is outside \[-0.075, 0.075\] m"):
        validate_action(spec, a, out_of_limits="reject")
    np.testing.assert_array_equal(validate_action(spec, a, out_of_limits="ignore"), a)
    with pytest.raises(ValueError, match="out_of_limits = 'wrap'"):
        validate_action(spec, a, out_of_limits="wrap")


def test_variant_and_single_step_only():
    spec = load_spec("droid")
    out = validate_action(spec, np.zeros(8), variant="joint_velocity")
    assert out.shape == (8,)
    with pytest.raises(ActionError, match=r"expected \(8,\)$"):
        validate_action(spec.actions["joint_velocity"], np.zeros((2, 8)), allow_chunk=False)


def test_pusht_limits_in_pixels():
    spec = load_spec("pusht")
    np.testing.assert_array_equal(validate_action(spec, [600, -3]), [512, 0])
    assert validate_action(spec, np.array([100, 200], dtype=np.int64)).dtype == np.float32
