"""Camera calibration: intrinsics K, OpenCV distortion, extrinsics; projection through OpenCV.

Conventions: the camera frame is OpenCV's (x right, y down, z forward); `camera_to_world` is the
4x4 pose of that frame in the world (robot base) frame; pixel centers sit at integer coordinates;
`dist` is OpenCV's coefficient order (k1, k2, p1, p2[, k3[, k4, k5, k6]]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
from ..errors import UserError


# cv2.undistortPoints' default 5 iterations leave ~0.03 px error under strong distortion.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def _as_points(points: np.ndarray, dims: int, what: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.shape[-1] != dims:
        raise UserError(f"{what} must have last dimension {dims}, got shape {arr.shape}")
    return arr.reshape(-1, dims)


@dataclass
class CameraCalibration:
    """A calibrated pinhole camera with lens distortion, in a world (robot base) frame."""

    width: int
    height: int
    K: np.ndarray  # (3, 3)
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    camera_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    name: str = ""

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=np.float64)
        self.dist = np.asarray(self.dist, dtype=np.float64).reshape(-1)
        self.camera_to_world = np.asarray(self.camera_to_world, dtype=np.float64)
        if self.K.shape != (3, 3):
            raise UserError(f"calibration {self.name!r}: K has shape {self.K.shape}, expected (3, 3)")
        if self.dist.size not in (4, 5, 8, 12, 14):
            raise UserError(f"calibration {self.name!r}: dist has {self.dist.size} coefficients, OpenCV takes 4/5/8/12/14")
        if self.camera_to_world.shape != (4, 4):
            raise UserError(
                f"calibration {self.name!r}: camera_to_world has shape {self.camera_to_world.shape}, expected (4, 4)"
            )
        rot = self.camera_to_world[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
            raise UserError(f"calibration {self.name!r}: camera_to_world[:3, :3] is not a rotation matrix")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_intrinsics(cls, fx, fy, cx, cy, width, height, dist=None, camera_to_world=None, name=""):
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(width, height, K, np.zeros(5) if dist is None else dist,
                   np.eye(4) if camera_to_world is None else camera_to_world, name)

    @classmethod
    def from_droid(cls, extrinsics, fx, fy, cx, cy, width, height, dist=None, name=""):
        """DROID extrinsics: a 6-vector `[x, y, z, rx, ry, rz]`, the camera pose in the robot base
        frame, angles as scipy `Rotation.from_euler("xyz", ...)` (extrinsic x-y-z, radians), the
        convention of droid/misc/transformations.py; the camera frame is OpenCV's."""
        ext = np.asarray(extrinsics, dtype=np.float64).reshape(-1)
        if ext.size != 6:
            raise UserError(f"DROID extrinsics for {name!r} have {ext.size} values, expected 6 (xyz + euler xyz)")
        pose = np.eye(4)
        pose[:3, :3] = Rotation.from_euler("xyz", ext[3:]).as_matrix()
        pose[:3, 3] = ext[:3]
        return cls.from_intrinsics(fx, fy, cx, cy, width, height, dist, pose, name)

    @classmethod
    def from_mujoco(cls, model, data, camera: str | int, width: int, height: int):
        """A MuJoCo camera (after `mj_forward`) at a render size. MuJoCo cameras look along -z with y
        up; OpenCV's look along +z with y down, so the frame is flipped about x. MuJoCo renders square
        pixels with the vertical field of view `cam_fovy` and the principal point at the image center."""
        import mujoco

        cam_id = camera if isinstance(camera, int) else mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam_id < 0:
            raise UserError(f"MuJoCo model has no camera {camera!r}")
        f = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[cam_id]) / 2)
        pose = np.eye(4)
        pose[:3, :3] = data.cam_xmat[cam_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        pose[:3, 3] = data.cam_xpos[cam_id]
        name = camera if isinstance(camera, str) else mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, cam_id)
        return cls.from_intrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height, None, pose, name or "")

    # ------------------------------------------------------------------ geometry

    @property
    def world_to_camera(self) -> np.ndarray:
        return np.linalg.inv(self.camera_to_world)

    def to_droid(self) -> np.ndarray:
        """The DROID 6-vector of `camera_to_world` (inverse of `from_droid`)."""
        return np.concatenate(
            [self.camera_to_world[:3, 3], Rotation.from_matrix(self.camera_to_world[:3, :3]).as_euler("xyz")]
        )

    def points_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        p = _as_points(points_world, 3, "points_world")
        w2c = self.world_to_camera
        return p @ w2c[:3, :3].T + w2c[:3, 3]

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) distorted pixel coordinates (`cv2.projectPoints`)."""
        p = _as_points(points_world, 3, "points_world")
        w2c = self.world_to_camera
        rvec, _ = cv2.Rodrigues(w2c[:3, :3])
        pixels, _ = cv2.projectPoints(p.reshape(-1, 1, 3), rvec, w2c[:3, 3], self.K, self.dist)
        return pixels.reshape(-1, 2)

    def in_view(self, points_world: np.ndarray) -> np.ndarray:
        """Bool (N,): in front of the camera and inside the image."""
        depth = self.points_to_camera(points_world)[:, 2]
        uv = self.project(points_world)
        inside = (uv[:, 0] >= -0.5) & (uv[:, 0] < self.width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < self.height - 0.5)
        return (depth > 0) & inside

    def normalized_coordinates(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) distorted pixels -> (N, 2) undistorted normalized image coordinates (x/z, y/z)."""
        uv = _as_points(pixels, 2, "pixels")
        return cv2.undistortPointsIter(uv.reshape(-1, 1, 2), self.K, self.dist, None, None,
                                       _UNDISTORT_CRITERIA).reshape(-1, 2)

    def unproject(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """(N, 2) pixels + (N,) depth along the optical axis (z, meters) -> (N, 3) world points."""
        xy = self.normalized_coordinates(pixels)
        z = np.broadcast_to(np.asarray(depth, dtype=np.float64).reshape(-1), (len(xy),))
        cam = np.column_stack([xy * z[:, None], z])
        return cam @ self.camera_to_world[:3, :3].T + self.camera_to_world[:3, 3]

    def undistort_points(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixel coordinates -> where they land in the undistorted image (same K)."""
        uv = _as_points(pixels, 2, "pixels")
        return cv2.undistortPointsIter(uv.reshape(-1, 1, 2), self.K, self.dist, None, self.K,
                                       _UNDISTORT_CRITERIA).reshape(-1, 2)

    def distort_points(self, pixels: np.ndarray) -> np.ndarray:
        """Undistorted pixel coordinates -> distorted ones (inverse of `undistort_points`)."""
        uv = _as_points(pixels, 2, "pixels")
        xy1 = cv2.convertPointsToHomogeneous(cv2.undistortPoints(uv.reshape(-1, 1, 2), self.K, np.zeros(5)))
        out, _ = cv2.projectPoints(xy1.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.K, self.dist)
        return out.reshape(-1, 2)

    def undistort_image(self, image: np.ndarray) -> np.ndarray:
        return cv2.undistort(image, self.K, self.dist)

    # ------------------------------------------------------------------ resizing

    def scaled(self, sx: float, sy: float | None = None) -> CameraCalibration:
        """The calibration of the image resized by (sx, sy); pixel centers map as (u + 0.5) * s - 0.5."""
        sy = sx if sy is None else sy
        K = self.K.copy()
        K[0, 0], K[0, 1], K[0, 2] = K[0, 0] * sx, K[0, 1] * sx, (K[0, 2] + 0.5) * sx - 0.5
        K[1, 1], K[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
        return CameraCalibration(round(self.width * sx), round(self.height * sy), K, self.dist.copy(),
                                 self.camera_to_world.copy(), self.name)

    def shifted(self, x0: float, y0: float, width: int, height: int) -> CameraCalibration:
        """The calibration of a canvas of (width, height) where this image's top-left pixel lands at
        (x0, y0): a crop (negative offsets) or a placement inside a larger layout."""
        K = self.K.copy()
        K[0, 2] += x0
        K[1, 2] += y0
        return CameraCalibration(width, height, K, self.dist.copy(), self.camera_to_world.copy(), self.name)

    # ------------------------------------------------------------------ serialization

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "width": int(self.width),
            "height": int(self.height),
            "K": self.K.tolist(),
            "dist": self.dist.tolist(),
            "camera_to_world": self.camera_to_world.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CameraCalibration:
        missing = [k for k in ("width", "height", "K") if k not in d]
        if missing:
            raise UserError(f"calibration dict {d.get('name', '')!r} lacks {missing}")
        return cls(int(d["width"]), int(d["height"]), d["K"], d.get("dist", np.zeros(5)),
                   d.get("camera_to_world", np.eye(4)), d.get("name", ""))

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load_json(cls, path: str | Path) -> CameraCalibration:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read calibration file {str(path)!r}: {e}") from e
        return cls.from_dict(d)
