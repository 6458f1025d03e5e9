"""Gymnasium spaces from an embodiment spec: LeRobot-keyed observations, physical-unit actions."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .spec import EmbodimentSpec


def observation_space_for(spec: EmbodimentSpec, cameras: list[str] | None = None) -> spaces.Dict:
    """The LeRobot-keyed observation space of an embodiment (uint8 HWC images, float32 state)."""
    cams = [spec.camera(c) for c in cameras] if cameras else list(spec.cameras)
    d = {c.key: spaces.Box(0, 255, (c.height, c.width, 3), np.uint8) for c in cams}
    d["observation.state"] = spaces.Box(spec.state.lower.astype(np.float32), spec.state.upper.astype(np.float32),
                                        dtype=np.float32)
    return spaces.Dict(d)


def action_space_for(spec: EmbodimentSpec, variant: str | None = None) -> spaces.Box:
    vec = spec.action_variant(variant)
    return spaces.Box(vec.lower.astype(np.float32), vec.upper.astype(np.float32), dtype=np.float32)
