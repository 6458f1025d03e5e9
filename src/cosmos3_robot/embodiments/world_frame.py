"""Where a robot's end effector is in the world frame (meters), read off its state: what Rerun draws as the
end-effector path. A task package registers the function for its embodiment (`register_end_effector`), for
a state whose units are not the world's (a planar pusher's workspace pixels); a state with a
`cartesian_position` field (a base-frame pose) needs none."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# embodiment name -> fn(states (T, S)) -> world-frame positions (T, 3)
END_EFFECTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def register_end_effector(embodiment: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    END_EFFECTORS[embodiment] = fn


def end_effector_path(spec, states: np.ndarray | None) -> np.ndarray | None:
    """World-frame end-effector positions (T, 3) from the states (T, S), where the embodiment has one."""
    if states is None or not len(states):
        return None
    states = np.asarray(states)
    if spec.name in END_EFFECTORS:
        return np.asarray(END_EFFECTORS[spec.name](states), dtype=np.float64)
    sl = spec.state.slices()
    if "cartesian_position" in sl:  # base-frame xyz, meters
        return np.asarray(states[:, sl["cartesian_position"]][:, :3], dtype=np.float64)
    return None
