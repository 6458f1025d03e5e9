"""Scripted pick-and-place expert for the Franka cube scene, acting from the observation alone.

It finds the red cube and the green target in the `exterior_1_left` image by colour, casts each
pixel's ray through the camera's calibration (`CameraCalibration`, OpenCV) onto the table plane to
get base-frame positions, and reads its own end-effector pose from `observation.state` (DROID's
cartesian_position). Waypoints (above cube, grasp, lift, above target, place, release) become joint
targets through the policy's own kinematic model (`FrankaIK`), with a speed limit per control step.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from ...embodiments import CameraCalibration
from .real import CUBE_HALF, FrankaIK, exterior_calibrations

CAMERA = "exterior_1_left"
# HSV ranges (OpenCV: H in [0, 180)) of the scene's red cube and green target.
RED = [((0, 120, 60), (8, 255, 255)), ((172, 120, 60), (180, 255, 255))]
GREEN = [((45, 120, 60), (80, 255, 255))]
GRASP_OFFSET = 0.02  # m: the end-effector site sits this far above the fingers' grip centre
HOVER, CARRY = 0.14, 0.16  # m above the table
MAX_STEP = 0.03  # m of end-effector travel per 15 Hz control step (0.45 m/s)
REACHED = 0.012  # m


def pixel_rays_to_plane(calib: CameraCalibration, pixels: np.ndarray, z: float) -> np.ndarray:
    """(N, 2) pixels -> (N, 3) base-frame points where their viewing rays meet the plane at height z."""
    rays = np.concatenate([calib.normalized_coordinates(pixels), np.ones((len(pixels), 1))], axis=1)
    R, origin = calib.camera_to_world[:3, :3], calib.camera_to_world[:3, 3]
    dirs = rays @ R.T
    s = (z - origin[2]) / dirs[:, 2]
    return origin + s[:, None] * dirs


def find_on_table(image: np.ndarray, calib: CameraCalibration, ranges, z: float):
    """Centroid (x, y) and yaw (mod 90 degrees) of the largest blob of a colour, on the plane z;
    None when the colour is not visible."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    mask = np.zeros(image.shape[:2], np.uint8)
    for lo, hi in ranges:
        mask |= cv2.inRange(hsv, np.array(lo), np.array(hi))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(labels == k)
    points = pixel_rays_to_plane(calib, np.stack([xs, ys], 1).astype(np.float64), z)
    (_, _), (_, _), angle = cv2.minAreaRect(points[:, :2].astype(np.float32))
    return points[:, :2].mean(0), np.deg2rad(angle) % (np.pi / 2)


class FrankaPickPlaceExpert:
    """Pick the cube, place it on the target (see module docstring). Actions: DROID joint_position
    (7 joint targets + gripper, 0 = open)."""

    def __init__(self, calibration: CameraCalibration, name: str = "expert", noise: float = 0.0, seed: int = 0):
        self.calibration, self.name, self.noise = calibration, name, noise
        self.ik = FrankaIK()
        self._seed = seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)
        self.plan: list[tuple[np.ndarray, float, int]] | None = None
        self.stage, self.hold = 0, 0

    def _make_plan(self, image: np.ndarray) -> None:
        cube = find_on_table(image, self.calibration, RED, CUBE_HALF)  # top face seen: its centre height
        target = find_on_table(image, self.calibration, GREEN, 0.0)
        if cube is None or target is None:
            raise RuntimeError(f"the expert cannot see the {'cube' if cube is None else 'target'} in {CAMERA}")
        (c, yaw), (t, _) = cube, target
        grasp = CUBE_HALF + GRASP_OFFSET
        # (end-effector position, gripper, steps to hold after reaching)
        self.plan = [
            (np.r_[c, HOVER], 0.0, 0), (np.r_[c, grasp], 0.0, 2), (np.r_[c, grasp], 1.0, 8),
            (np.r_[c, CARRY], 1.0, 0), (np.r_[t, CARRY], 1.0, 0), (np.r_[t, grasp + 0.005], 1.0, 2),
            (np.r_[t, grasp + 0.005], 0.0, 6), (np.r_[t, HOVER], 0.0, 1000),
        ]
        # gripper pointing down, fingers across the cube's faces (the hand's yaw is 45 degrees off link 7)
        self.rot = Rotation.from_euler("xyz", [np.pi, 0.0, -(yaw + np.pi / 4)]).as_matrix()

    def select_action(self, observation: dict) -> np.ndarray:
        state = np.asarray(observation["observation.state"], np.float64)
        q, ee = state[:7], state[8:11]
        if self.plan is None:
            self._make_plan(np.asarray(observation[f"observation.images.{CAMERA}"]))
        goal, grip, hold = self.plan[self.stage]
        delta = goal - ee
        dist = np.linalg.norm(delta)
        if dist < REACHED and self.stage < len(self.plan) - 1:
            self.hold += 1
            if self.hold > hold:
                self.stage, self.hold = self.stage + 1, 0
        step = ee + delta * min(1.0, MAX_STEP / max(dist, 1e-9))
        if self.noise:
            step = step + self.rng.normal(0.0, self.noise, 3)
        target_q = self.ik.solve(q, step, self.rot)
        return np.r_[target_q, grip].astype(np.float32)


class FrankaRandomPolicy:
    """Uniform joint targets within a small box around the current joints, random gripper."""

    def __init__(self, name: str = "random", scale: float = 0.15, seed: int = 0):
        self.name, self.scale, self._seed = name, scale, seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)

    def select_action(self, observation: dict) -> np.ndarray:
        q = np.asarray(observation["observation.state"][:7], np.float64)
        return np.r_[q + self.rng.uniform(-self.scale, self.scale, 7), self.rng.integers(0, 2)].astype(np.float32)


def make_franka_policy(name: str, seed: int = 0):
    """expert, expert-noise<s> (Gaussian noise of s x 0.01 m on each end-effector step) or random."""
    import re

    if name == "random":
        return FrankaRandomPolicy(seed=seed)
    calib = exterior_calibrations()[CAMERA]
    if name == "expert":
        return FrankaPickPlaceExpert(calib, seed=seed)
    if m := re.fullmatch(r"expert-noise([0-9.]+)", name):
        return FrankaPickPlaceExpert(calib, name=name, noise=float(m.group(1)) * 0.01, seed=seed)
    raise ValueError(f"unknown Franka policy {name!r}; use expert, expert-noise<s> (s x 1 cm) or random")
