"""Robot state a wire protocol leaves out, computed from what it carries: openpi's DROID observation has joint
and gripper positions but no cartesian pose, which the robot's kinematic chain gives. A task package registers
the function for its embodiment (`register_state_completion`); generic code calls `complete_state`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import UserError

# embodiment name -> fn(state (S,) with the given fields filled, given: set of field names) -> the full state (S,)
COMPLETIONS: dict[str, Callable[[np.ndarray, set[str]], np.ndarray]] = {}


def register_state_completion(embodiment: str, fn: Callable[[np.ndarray, set[str]], np.ndarray]) -> None:
    COMPLETIONS[embodiment] = fn


def complete_state(spec, fields: dict[str, np.ndarray]) -> np.ndarray:
    """The spec's full state from some of its fields (name -> values): the registered completion fills the rest;
    without one, every field must be given."""
    state = np.full(spec.state.dims, np.nan)
    slices = spec.state.slices()
    for name, value in fields.items():
        state[slices[name]] = np.asarray(value, np.float64).reshape(-1)
    missing = set(slices) - set(fields)
    if missing:
        if spec.name not in COMPLETIONS:
            raise UserError(f"state fields {sorted(missing)} of {spec.name!r} are missing and nothing computes them; "
                            "send them")
        state = np.asarray(COMPLETIONS[spec.name](state, set(fields)), np.float64)
    return state
