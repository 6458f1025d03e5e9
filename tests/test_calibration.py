import json

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cosmos3_robot.embodiments import CameraCalibration, ConcatLayout, load_spec


def look_at_pose(position, target):
    """camera_to_world for an OpenCV camera at `position` looking at `target` (world z up)."""
    z = np.asarray(target, float) - position
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, y, z])
    pose[:3, 3] = position
    return pose


def test_project_matches_hand_computed_pinhole():
    pose = look_at_pose(np.array([1.0, -0.5, 0.8]), [0.3, 0.1, 0.0])
    cam = CameraCalibration.from_intrinsics(500.0, 480.0, 319.5, 239.5, 640, 480, camera_to_world=pose)
    pts = np.array([[0.3, 0.1, 0.0], [0.5, 0.0, 0.1], [0.2, 0.3, -0.05]])
    # by hand: p_cam = R^T (p - t); u = fx x/z + cx; v = fy y/z + cy
    p_cam = (pts - pose[:3, 3]) @ pose[:3, :3]
    expected = np.column_stack([500 * p_cam[:, 0] / p_cam[:, 2] + 319.5, 480 * p_cam[:, 1] / p_cam[:, 2] + 239.5])
    np.testing.assert_allclose(cam.project(pts), expected, atol=1e-9)
    np.testing.assert_allclose(cam.project(pts[:1]), [[319.5, 239.5]], atol=1e-9)  # the look-at target
    assert cam.in_view(pts).all()
    assert not cam.in_view(np.array([[3.0, -2.0, 2.0]]))[0]  # behind the camera


def test_distortion_round_trips():
    cam = CameraCalibration.from_intrinsics(
        520.0, 520.0, 320.0, 240.0, 640, 480, dist=[-0.28, 0.07, 0.001, -0.0005, 0.0]
    )
    rng = np.random.default_rng(0)
    pixels = rng.uniform([40, 40], [600, 440], size=(50, 2))
    und = cam.undistort_points(pixels)
    assert np.abs(und - pixels).max() > 1.0  # the distortion is not negligible
    np.testing.assert_allclose(cam.distort_points(und), pixels, atol=1e-3)
    # unproject at depth, then project back lands on the same distorted pixel
    depth = rng.uniform(0.5, 3.0, size=50)
    world = cam.unproject(pixels, depth)
    np.testing.assert_allclose(cam.points_to_camera(world)[:, 2], depth, atol=1e-9)
    np.testing.assert_allclose(cam.project(world), pixels, atol=1e-3)


def test_distortion_hand_computed_radial():
    k1 = -0.2
    cam = CameraCalibration.from_intrinsics(100.0, 100.0, 50.0, 50.0, 101, 101, dist=[k1, 0, 0, 0, 0])
    x, y = 0.3, -0.1
    r2 = x * x + y * y
    expected = [100 * x * (1 + k1 * r2) + 50, 100 * y * (1 + k1 * r2) + 50]
    np.testing.assert_allclose(cam.project([[x, y, 1.0]])[0], expected, atol=1e-9)


def test_undistort_image_straightens():
    cam = CameraCalibration.from_intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240, dist=[-0.3, 0.1, 0, 0, 0])
    img = np.zeros((240, 320), np.uint8)
    img[100:140, 140:180] = 255
    out = cam.undistort_image(img)
    assert out.shape == img.shape and out.dtype == img.dtype


def test_droid_extrinsics_loader_and_inverse():
    ext = np.array([0.2, -0.4, 0.5, -2.1, 0.05, 0.9])
    cam = CameraCalibration.from_droid(ext, 522.4, 522.4, 640.0, 360.0, 1280, 720, name="exterior_1_left")
    np.testing.assert_allclose(cam.camera_to_world[:3, 3], ext[:3])
    np.testing.assert_allclose(cam.camera_to_world[:3, :3], Rotation.from_euler("xyz", ext[3:]).as_matrix())
    np.testing.assert_allclose(cam.to_droid(), ext, atol=1e-12)
    with pytest.raises(ValueError, match="have 5 values, expected 6"):
        CameraCalibration.from_droid(ext[:5], 1, 1, 0, 0, 10, 10, name="x")


def test_json_round_trip(tmp_path):
    cam = CameraCalibration.from_droid([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 300, 310, 160, 120, 320, 240,
                                       dist=[0.1, -0.01, 0.001, 0.002, 0.0], name="wrist_left")
    path = tmp_path / "cam.json"
    cam.save_json(path)
    back = CameraCalibration.load_json(path)
    assert back.name == "wrist_left" and (back.width, back.height) == (320, 240)
    np.testing.assert_array_equal(back.K, cam.K)
    np.testing.assert_array_equal(back.camera_to_world, cam.camera_to_world)
    np.testing.assert_array_equal(back.dist, cam.dist)
    path.write_text("{broken")
    with pytest.raises(ValueError, match="cannot read calibration file"):
        CameraCalibration.load_json(path)


def test_bad_calibration_errors_name_the_field():
    with pytest.raises(ValueError, match="K has shape"):
        CameraCalibration(10, 10, np.eye(2))
    with pytest.raises(ValueError, match="dist has 3 coefficients"):
        CameraCalibration(10, 10, np.eye(3), dist=[0, 0, 0])
    with pytest.raises(ValueError, match="not a rotation matrix"):
        CameraCalibration(10, 10, np.eye(3), camera_to_world=np.diag([1, 1, -1, 1.0]))


def test_scaled_matches_a_resized_image():
    cam = CameraCalibration.from_intrinsics(200.0, 200.0, 159.5, 119.5, 320, 240)
    half = cam.scaled(0.5)
    assert (half.width, half.height) == (160, 120)
    # a 2x2 block centred on pixel (100.5, 60.5) becomes one pixel at (50, 30) after INTER_AREA
    img = np.zeros((240, 320), np.float32)
    img[60:62, 100:102] = 1.0
    small = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
    assert small[30, 50] == pytest.approx(1.0)
    p = cam.unproject([[100.5, 60.5]], 2.0)
    np.testing.assert_allclose(half.project(p), [[50.0, 30.0]], atol=1e-9)


def test_concat_view_layout_and_intrinsics():
    spec = load_spec("droid")
    layout = ConcatLayout.from_spec(spec)
    assert (layout.height, layout.width) == (270, 320)
    assert layout.regions == {"wrist_left": (0, 0, 320, 180), "exterior_1_left": (0, 180, 160, 90),
                              "exterior_2_left": (160, 180, 160, 90)}
    calibs = {
        c.name: CameraCalibration.from_intrinsics(260.0, 260.0, 159.5, 89.5, 320, 180,
                                                  camera_to_world=look_at_pose(np.array(pos), [0.5, 0, 0]), name=c.name)
        for c, pos in zip(spec.cameras, [(0.5, -0.8, 0.6), (0.5, 0.8, 0.6), (0.4, 0.05, 0.5)])
    }
    point = np.array([[0.52, 0.03, 0.02]])
    images = {}
    for name, cam in calibs.items():  # draw a 2x2 dot where each camera sees the point
        u, v = np.rint(cam.project(point)[0] - 0.5).astype(int)
        img = np.zeros((180, 320, 3), np.uint8)
        img[v : v + 2, u : u + 2] = 255
        images[name] = img
    canvas = layout.compose(images)
    assert canvas.shape == (270, 320, 3)
    for name, sub in layout.calibrations(calibs).items():
        x0, y0, w, h = layout.regions[name]
        u, v = sub.project(point)[0]
        assert x0 <= u < x0 + w and y0 <= v < y0 + h
        region = canvas[y0 : y0 + h, x0 : x0 + w, 0].astype(float)
        ys, xs = np.nonzero(region)
        centroid = np.array([np.average(xs, weights=region[ys, xs]) + x0, np.average(ys, weights=region[ys, xs]) + y0])
        np.testing.assert_allclose(centroid, [u, v], atol=0.75)
    for name, img in layout.split(canvas).items():
        assert img.shape[:2] == layout.regions[name][3:1:-1]


def test_concat_view_needs_matching_sizes():
    with pytest.raises(ValueError, match="share one resolution"):
        ConcatLayout.build([("a", 10, 20), ("b", 12, 20), ("c", 10, 20)])
    with pytest.raises(ValueError, match="declares no concat_view"):
        ConcatLayout.from_spec(load_spec("pusht"))


MJCF = """
<mujoco>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom type="plane" size="2 2 0.1" rgba="0.2 0.2 0.2 1"/>
    <body pos="0.3 0.1 0.05"><geom name="ball" type="sphere" size="0.02" rgba="1 0 0 1"/></body>
    <camera name="exterior" pos="1.0 -0.6 0.7" xyaxes="0.6 0.8 0 -0.35 0.26 0.9" fovy="50"/>
  </worldbody>
</mujoco>
"""


def test_mujoco_camera_projection_matches_render():
    mujoco = pytest.importorskip("mujoco")
    model = mujoco.MjModel.from_xml_string(MJCF)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    w, h = 320, 240
    with mujoco.Renderer(model, h, w) as renderer:
        renderer.update_scene(data, camera="exterior")
        rgb = renderer.render()
    r, g = rgb[..., 0].astype(int), rgb[..., 1].astype(int)
    red = r > g + 40  # the ball, lit or shaded; the floor is grey
    assert red.sum() > 5, "the ball should be visible"
    ys, xs = np.nonzero(red)
    cam = CameraCalibration.from_mujoco(model, data, "exterior", w, h)
    uv = cam.project(data.xpos[1][None])[0]
    np.testing.assert_allclose([xs.mean(), ys.mean()], uv, atol=1.0)
    assert json.loads(json.dumps(cam.to_dict()))["name"] == "exterior"
