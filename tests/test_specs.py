from pathlib import Path

import numpy as np
import pytest

from cosmos3_robot import embodiments

from cosmos3_robot.embodiments import SpecError, is_camera_key, list_embodiments, load_spec
from cosmos3_robot.embodiments.padding import MAX_ACTION_DIM, pad_action, unpad_action

# Cosmos 3 canonical widths and rates (issue #2 / Cosmos 3 action cookbook).
CANONICAL = {
    "pusht": dict(kind="planar_pusher", dims=2, hz=10, chunk=16),
    "droid": dict(kind="single_arm", dims=10, hz=15, chunk=16),
    "aloha": dict(kind="dual_arm", dims=14, hz=50, chunk=100),
    "humanoid": dict(kind="humanoid", dims=29, hz=10, chunk=16),
    "camera_motion": dict(kind="camera_motion", dims=9, hz=16, chunk=16),
    "autonomous_vehicle": dict(kind="autonomous_vehicle", dims=9, hz=10, chunk=60),
    "egocentric": dict(kind="egocentric", dims=57, hz=15, chunk=16),
}


def test_every_shipped_spec_is_listed():
    assert set(list_embodiments()) == set(CANONICAL)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_spec_loads_with_canonical_shape(name):
    spec = load_spec(name)
    want = CANONICAL[name]
    assert spec.name == name and spec.kind == want["kind"]
    assert spec.action_dims == want["dims"] <= MAX_ACTION_DIM
    assert spec.control_hz == want["hz"] and spec.chunk_length == want["chunk"]
    for vec in [*spec.actions.values(), spec.state]:
        assert len(vec.dim_names) == vec.dims == len(vec.lower) == len(vec.upper)
        assert np.all(vec.lower <= vec.upper)
        slices = vec.slices()
        assert sum(s.stop - s.start for s in slices.values()) == vec.dims
    assert spec.cameras and all(is_camera_key(c.key) for c in spec.cameras)


def test_domain_ids_unique():
    ids = [load_spec(n).domain_id for n in CANONICAL]
    assert len(set(ids)) == len(ids)


def test_droid_variants_and_layouts():
    spec = load_spec("droid")
    assert {k: v.dims for k, v in spec.actions.items()} == {
        "ee_delta": 10, "joint_position": 8, "joint_velocity": 8, "cartesian_position": 7
    }
    assert spec.actions["joint_position"].chunk_length == 32
    ee = spec.action
    assert [f.name for f in ee.fields] == ["ee_translation", "ee_rotation", "gripper"]
    assert ee.field("ee_rotation").rotation == "rot6d"
    assert [c.name for c in spec.cameras] == ["exterior_1_left", "exterior_2_left", "wrist_left"]
    assert spec.concat_view[0] == "wrist_left" and spec.gripper_open == 0


def test_humanoid_and_egocentric_layouts():
    hum = load_spec("humanoid").action
    assert [f.dims for f in hum.fields] == [3, 6, 3, 6, 1, 3, 6, 1]  # head 9, right 9+1, left 9+1
    ego = load_spec("egocentric").action
    sl = ego.slices()
    assert sl["right_fingertips"].stop - sl["right_fingertips"].start == 15
    assert sl["left_fingertips"].stop == 57


def test_pusht_matches_gym_pusht():
    import gym_pusht  # noqa: F401  (registers the env)
    import gymnasium as gym

    spec = load_spec("pusht")
    env = gym.make("gym_pusht/PushT-v0", obs_type="pixels_agent_pos")
    try:
        assert env.action_space.shape == (spec.action_dims,)
        np.testing.assert_allclose(env.action_space.low, spec.action.lower)
        np.testing.assert_allclose(env.action_space.high, spec.action.upper)
        cam = spec.camera("top")
        assert env.observation_space["pixels"].shape == (cam.height, cam.width, 3)
        assert env.observation_space["agent_pos"].shape == (spec.state.dims,)
        assert env.unwrapped.metadata["render_fps"] == spec.control_hz
    finally:
        env.close()


def test_aloha_matches_gym_aloha():
    from gym_aloha import constants

    spec = load_spec("aloha")
    assert len(constants.ACTIONS) == spec.action_dims == spec.state.dims
    assert 1.0 / constants.DT == pytest.approx(spec.control_hz)
    open_value = constants.normalize_puppet_gripper_position(constants.PUPPET_GRIPPER_POSITION_OPEN)
    assert spec.gripper_open == pytest.approx(open_value)


def test_unknown_embodiment_names_the_options():
    with pytest.raises(SpecError, match="unknown embodiment 'franka'.*pusht"):
        load_spec("franka")


def test_unknown_action_variant():
    with pytest.raises(SpecError, match="no action variant 'torque'.*joint_position"):
        load_spec("droid").action_variant("torque")


BASE = """
name = "bot"
kind = "single_arm"
domain_id = 9
control_hz = 10
video_fps = 10
chunk_length = 4
[actions.a]
[[actions.a.fields]]
name = "x"
dims = 2
unit = "m"
lower = -1
upper = 1
"""


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.replace('kind = "single_arm"', 'kind = "tank"'), "'kind' = 'tank' is not one of"),
        (lambda s: s.replace("control_hz = 10\n", ""), "missing required field 'control_hz'"),
        (lambda s: s.replace("dims = 2", "dims = 0"), "field 'x': dims = 0"),
        (lambda s: s.replace("lower = -1", "lower = [-1, -1, -1]"), "field 'x'.*'lower' has 3 values"),
        (lambda s: s.replace("lower = -1", "lower = 5"), "field 'x'.*exceeds upper"),
        (lambda s: s + 'representation = "jerk"\n', "'representation' = 'jerk'"),
        (lambda s: s.replace("video_fps = 10", "video_fps = 0"), "video_fps = 0.0 must be > 0"),
        (lambda s: s.replace('domain_id = 9', 'domain_id = "nine"'), "'domain_id' = 'nine' has type str"),
        (lambda s: s + '[lerobot]\naction_names = {motors = ["m0"]}\n', r"\[lerobot\] action_names = .*a list of \[2\]"),
        (lambda s: s + '[lerobot]\nnames = ["a", "b"]\n', r"\[lerobot\] takes state_names, action_names and port_robot_type"),
        (lambda s: s + 'concat_view = ["nope"]\n', None),  # TOML: key after a table goes into the table
    ],
)
def test_bad_spec_file_errors_name_the_field(tmp_path, edit, match):
    path = tmp_path / "bot.toml"
    text = edit(BASE)
    path.write_text(text)
    if match is None:
        path.write_text('concat_view = ["nope"]\n' + BASE)
        match = "concat_view names unknown cameras"
    with pytest.raises(SpecError, match=match) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_spec_file_not_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = [unclosed")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)


def test_custom_spec_file_loads(tmp_path):
    path = tmp_path / "bot.toml"
    path.write_text(BASE)
    spec = load_spec(path)
    assert spec.action_dims == 2 and spec.action.chunk_length == 4 and spec.state.dims == 0


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_pad_unpad_round_trip(name):
    spec = load_spec(name)
    a = np.random.default_rng(0).normal(size=(5, spec.action_dims)).astype(np.float32)
    padded, mask = pad_action(a)
    assert padded.shape == (5, MAX_ACTION_DIM) and mask.sum() == spec.action_dims
    assert np.all(padded[:, ~mask] == 0)
    np.testing.assert_array_equal(unpad_action(padded, spec.action_dims), a)


def test_pad_too_wide():
    with pytest.raises(ValueError, match="65 dims"):
        pad_action(np.zeros(65))


def test_camera_key_option_and_its_check(tmp_path):
    spec = load_spec("pusht")
    assert spec.cameras[0].key == "observation.image" and spec.robot_type == "unknown"  # lerobot/pusht's
    assert load_spec("droid").camera("wrist_left").key == "observation.images.wrist_left"
    src = Path(embodiments.__file__).parent / "specs" / "pusht.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(src.read_text().replace('key = "observation.image"', 'key = "pixels"'))
    with pytest.raises(SpecError, match=r"\[\[cameras\]\] #0: key = 'pixels'"):
        load_spec(str(bad))
