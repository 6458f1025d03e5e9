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
