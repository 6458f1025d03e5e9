"""Perceived state: quantities a world model carries next to the robot's own state, read off camera
frames by a fixed estimator (never from a simulator's internals), so a learned simulator can start
from any real frame. Task packages register their estimators here by name (`register_perception`);
a checkpoint names the one it was trained with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ..errors import UserError


@dataclass(frozen=True)
class Perception:
    """dims; `perceive`: frames (N, H, W, 3) uint8 -> (N, dims) float32 in roughly [-1, 1];
    `project`: predicted (..., dims) -> the nearest valid perceived state."""

    dims: int
    perceive: Callable[[np.ndarray], np.ndarray]
    project: Callable[[np.ndarray], np.ndarray]


PERCEPTIONS: dict[str, Perception] = {}


def largest_blob(image: np.ndarray, ranges) -> np.ndarray | None:
    """(H, W, 3) uint8 RGB -> (n, 2) pixel coordinates (x, y) of the largest blob of a colour (HSV `ranges`,
    OpenCV's H in [0, 180)), or None."""
    import cv2

    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    mask = np.zeros(image.shape[:2], np.uint8)
    for lo, hi in ranges:
        mask |= cv2.inRange(hsv, np.array(lo), np.array(hi))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ys, xs = np.nonzero(labels == k)
    return np.stack([xs, ys], 1).astype(np.float64)


def pixel_rays_to_plane(calib, pixels: np.ndarray, z: float) -> np.ndarray:
    """(N, 2) pixels of a `CameraCalibration` -> (N, 3) world points where their viewing rays meet the plane at
    height z."""
    rays = np.concatenate([calib.normalized_coordinates(pixels), np.ones((len(pixels), 1))], axis=1)
    R, origin = calib.camera_to_world[:3, :3], calib.camera_to_world[:3, 3]
    dirs = rays @ R.T
    s = (z - origin[2]) / dirs[:, 2]
    return origin + s[:, None] * dirs


def register_perception(name: str, perception: Perception) -> None:
    PERCEPTIONS[name] = perception


def get_perception(name: str) -> Perception:
    if name not in PERCEPTIONS:
        raise UserError(f"unknown perceived state {name!r}; registered: {sorted(PERCEPTIONS)} (a task package "
                         "registers its estimator with embodiments.perception.register_perception)")
    return PERCEPTIONS[name]


def perception_dims(name: str | None) -> int:
    return 0 if name is None else get_perception(name).dims


def project(name: str, predicted: np.ndarray) -> np.ndarray:
    """A model's predicted perceived state (..., dims) -> the nearest valid one (e.g. inside the workspace)."""
    return get_perception(name).project(np.asarray(predicted, dtype=np.float32))


def perceive(name: str, frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 frames -> (N, dims) perceived state."""
    p = get_perception(name)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UserError(f"perceive({name!r}) needs frames of shape (N, H, W, 3), got {frames.shape}")
    out = p.perceive(frames)
    assert out.shape == (len(frames), p.dims), out.shape
    return out


# (embodiment, LeRobot feature key) -> fn(observation dict) -> (D,) float32: an observation feature that a policy
# trained elsewhere reads and that the task derives from what both its simulators give, e.g. gym-pusht's keypoints
# of the T as LeRobot's `observation.environment_state`, read off the camera frame (never from a simulator's
# internals, so the real and the learned simulator feed the policy the same way)
OBSERVATION_FEATURES: dict[tuple[str, str], Callable[[dict], np.ndarray]] = {}


def register_observation_feature(embodiment: str, key: str, fn: Callable[[dict], np.ndarray]) -> None:
    OBSERVATION_FEATURES[(embodiment, key)] = fn


def observation_feature(embodiment: str, key: str) -> Callable[[dict], np.ndarray] | None:
    """The registered function deriving feature `key` for `embodiment`'s observations, or None."""
    return OBSERVATION_FEATURES.get((embodiment, key))


def derived_feature_keys(embodiment: str) -> list[str]:
    return sorted(k for e, k in OBSERVATION_FEATURES if e == embodiment)
