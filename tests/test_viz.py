import numpy as np
import pytest
import rerun as rr

from cosmos3_robot.datasets import DroidWriter, list_droid_episodes, read_droid_episode
from cosmos3_robot.embodiments import CameraCalibration, load_spec
from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval import record
from cosmos3_robot.tasks.pusht import make_pusht_policy, workspace_to_world
from cosmos3_robot.viz import (
    RolloutLog,
    contact_sheet,
    episode_log,
    read_images,
    save_rollout,
    spec_calibrations,
)


@pytest.fixture(scope="module")
def episode():
    return record(PushTRealEnv(max_episode_steps=25), make_pusht_policy("expert"), seed=3)


def read_table(path):
    return rr.chunk.RrdReader(str(path)).stream().collect().reader(index="step").to_arrow_table()


def test_rrd_has_every_entity_with_the_right_rows(episode, tmp_path):
    T = episode["length"]
    predicted = np.roll(episode["frames"], 1, axis=0)
    log = RolloutLog(spec=load_spec("pusht"), real={"top": episode["frames"]}, predicted={"top": predicted},
                     actions=episode["actions"], states=episode["states"], success_prob=np.linspace(0, 1, T),
                     disagreement=np.linspace(0.5, 0.1, T))
    path = save_rollout(log, tmp_path / "r.rrd")
    table = read_table(path)
    assert table.num_rows == T
    expected = ["/cameras/top/real:EncodedImage:blob", "/cameras/top/predicted:EncodedImage:blob",
                "/cameras/top/abs_diff:EncodedImage:blob", "/actions/target/x:Scalars:scalars",
                "/actions/target/y:Scalars:scalars", "/state/agent_pos/x:Scalars:scalars",
                "/success_probability/p:Scalars:scalars", "/disagreement/spread:Scalars:scalars",
                "/cameras/top/real/ee_path:Points2D:positions", "/world/ee:Points3D:positions", "/world/cameras/top:Pinhole:image_from_camera",
                "/world/cameras/top:Transform3D:translation", "/world/ee_path:LineStrips3D:strips"]
    for col in expected:
        assert col in table.column_names, col
    for col in expected[:9]:
        assert table.column(col).null_count == 0, col  # a value at every step
    spread = [v[0] for v in table.column("/disagreement/spread:Scalars:scalars").to_pylist()]
    np.testing.assert_allclose(spread, np.linspace(0.5, 0.1, T), rtol=1e-6)
    xs = [v[0] for v in table.column("/actions/target/x:Scalars:scalars").to_pylist()]
    np.testing.assert_allclose(xs, episode["actions"][:, 0], rtol=1e-6)
    images = read_images(path, "cameras/top/real")
    assert len(images) == T and images[5].shape == (96, 96, 3)
    assert np.abs(images[5].astype(int) - episode["frames"][5]).mean() < 6  # JPEG, close to the frame


def test_projected_end_effector_lands_where_calibration_puts_it(episode, tmp_path):
    spec = load_spec("pusht")
    log = RolloutLog(spec=spec, real={"top": episode["frames"]}, states=episode["states"], actions=episode["actions"])
    table = read_table(save_rollout(log, tmp_path / "p.rrd"))
    t = 10
    points = table.column("/cameras/top/real/ee_path:Points2D:positions").to_pylist()[t]
    cam = spec_calibrations(spec)["top"]
    expected = cam.project(workspace_to_world(episode["states"][t]))[0]
    np.testing.assert_allclose(points[-1], expected, atol=1e-3)
    # and that is where the pusher is drawn in the real image (its blue disc)
    img = episode["frames"][t]
    ys, xs = np.nonzero((img[..., 2] > 200) & (img[..., 0] < 120))
    np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=1.0)


def test_droid_episode_with_calibrated_cameras(tmp_path):
    spec = load_spec("droid")
    rng = np.random.default_rng(0)
    calib = {c.name: CameraCalibration.from_droid([0.5, -0.4 + 0.4 * i, 0.5, -2.3, 0.0, 0.3 * i], 150, 150, 159.5,
                                                  89.5, 320, 180, name=c.name) for i, c in enumerate(spec.cameras)}
    writer = DroidWriter(tmp_path / "droid", spec, calibrations=calib)
    for t in range(6):
        obs = {c.key: rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for c in spec.cameras}
        state = np.zeros(14, np.float32)
        state[8:11] = [0.4 + 0.02 * t, 0.0, 0.2]  # cartesian xyz
        obs["observation.state"] = state
        writer.add_frame(obs, np.zeros(10), 0.0, False, "pick")
    writer.save_episode(success=True)
    ep = read_droid_episode(list_droid_episodes(tmp_path / "droid")[0])
    log = episode_log(ep, spec)
    table = read_table(save_rollout(log, tmp_path / "d.rrd"))
    for cam in ("wrist_left", "exterior_1_left", "exterior_2_left"):
        assert f"/world/cameras/{cam}:Pinhole:image_from_camera" in table.column_names
        assert f"/cameras/{cam}/real:EncodedImage:blob" in table.column_names
    pts = table.column("/world/ee_path:LineStrips3D:strips").to_pylist()
    assert any(p is not None for p in pts)


def test_contact_sheet(episode, tmp_path):
    log = RolloutLog(spec=load_spec("pusht"), real={"top": episode["frames"]}, actions=episode["actions"])
    path = save_rollout(log, tmp_path / "c.rrd")
    png = contact_sheet(path, ["cameras/top/real"], [0, 5, 10], tmp_path / "sheet.png")
    import cv2

    img = cv2.imread(str(png))
    assert img.shape[1] == 3 * (96 * 2 + 2) and img.shape[0] == 96 * 2 + 2
    with pytest.raises(KeyError, match="no images at"):
        read_images(path, "cameras/nope")


def test_eval_trust_view_has_each_policys_probabilities_and_interval(tmp_path):
    from cosmos3_robot.viz.rerun_log import save_eval_report

    report = {"policies": {
        "expert": {"learned": {"success": 0.75, "episodes": [1, 1, 0, 1], "probability_per_episode": [1, .5, .25, 1]},
                   "real": {"success": 0.5, "episodes": [1, 0, 0, 1]}, "estimate": {"ci95": [0.2, 0.9]}},
        "world-model#chunk=8&plan=1": {"learned": {"success": 0.25, "episodes": [0, 0, 1, 0]}}}}
    path = save_eval_report(report, tmp_path / "t.rrd")
    table = rr.chunk.RrdReader(str(path)).stream().collect().reader(index="episode").to_arrow_table()
    p = [v[0] for v in table.column("/trust/expert/probability:Scalars:scalars").to_pylist()]
    np.testing.assert_allclose(p, [1, .5, .25, 1])
    real = [v[0] for v in table.column("/trust/expert/real:Scalars:scalars").to_pylist()]
    np.testing.assert_allclose(real, [1, 0, 0, 1])
    assert "/trust/world-model_chunk_8_plan_1/learned:Scalars:scalars" in table.column_names
    static = rr.chunk.RrdReader(str(path)).stream().collect().reader(index=None).to_arrow_table()
    (point,) = static.column("/trust/success/policies:Points2D:positions").to_pylist()[0]
    np.testing.assert_allclose(point, [50, 25])  # real 0.5 across, learned 0.75 up (y down in 2-D views)
    (bar,) = static.column("/trust/success/estimate_ci95:LineStrips2D:strips").to_pylist()[0]
    np.testing.assert_allclose(bar, [[20, 25], [90, 25]])
