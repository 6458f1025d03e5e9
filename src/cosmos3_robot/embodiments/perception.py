"""Perceived state: quantities a world model carries in its state token next to the robot's own state,
read off camera frames by a fixed estimator (never from the simulator's internals), so a learned
simulator can start from any real frame. The model predicts them like the proprioceptive state and the
learned env feeds its own predictions back; observations still expose only the spec's state."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .pusht_vision import (block_pose_features, features_to_pose, goal_coverage, pose_to_features,
                           project_block_pose_features)

# name -> (dims, frames (N, H, W, 3) uint8 -> (N, dims) float32 in roughly [-1, 1],
#          predicted (..., dims) -> the nearest valid perceived state)
PERCEPTIONS: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "pusht_block_pose": (4, block_pose_features, project_block_pose_features),  # the T's x, y, cos, sin
}


# perceived states that hold a rigid body's pose: name -> (features -> (x, y, angle) in workspace units,
# the inverse, pose -> the task's goal coverage in [0, 1]); the pose dynamics head and the coverage judge
# of the learned simulator work on these poses
POSES: dict[str, tuple[Callable, Callable, Callable]] = {
    "pusht_block_pose": (features_to_pose, pose_to_features, goal_coverage),
}


def pose_functions(name: str | None) -> tuple[Callable, Callable, Callable]:
    """(features -> pose, pose -> features, pose -> goal coverage) of a pose-valued perceived state."""
    if name not in POSES:
        raise ValueError(f"perceived state {name!r} holds no pose; pose dynamics and the coverage judge need one of "
                         f"{sorted(POSES)} (train with --perceive-state)")
    return POSES[name]


def perception_dims(name: str | None) -> int:
    if name is None:
        return 0
    if name not in PERCEPTIONS:
        raise ValueError(f"unknown perceived state {name!r}; choose one of {sorted(PERCEPTIONS)}")
    return PERCEPTIONS[name][0]


def project(name: str, predicted: np.ndarray) -> np.ndarray:
    """A model's predicted perceived state (..., dims) -> the nearest valid one (e.g. inside the workspace)."""
    perception_dims(name)
    return PERCEPTIONS[name][2](np.asarray(predicted, dtype=np.float32))


def perceive(name: str, frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 frames -> (N, dims) perceived state."""
    dims = perception_dims(name)
    fn = PERCEPTIONS[name][1]
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"perceive({name!r}) needs frames of shape (N, H, W, 3), got {frames.shape}")
    out = fn(frames)
    assert out.shape == (len(frames), dims), out.shape
    return out
