"""The `Policy` protocol: what every agent (scripted, LeRobot, world-model) implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """`reset()` before an episode; `select_action(observation)` returns one action in the
    embodiment's physical units (chunked policies keep an internal queue, LeRobot-style)."""

    name: str

    def reset(self, seed: int | None = None) -> None: ...

    def select_action(self, observation: dict) -> np.ndarray: ...
