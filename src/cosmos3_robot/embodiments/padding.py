"""Padding every embodiment's action to one common width with a mask, as Cosmos 3 does, so one
backbone serves all embodiments (the domain id picks the per-embodiment projection)."""

from __future__ import annotations

import numpy as np
from ..errors import UserError

MAX_ACTION_DIM = 64  # Cosmos 3's common action width


def pad_action(action: np.ndarray, width: int = MAX_ACTION_DIM) -> tuple[np.ndarray, np.ndarray]:
    """(..., D) -> zero-padded (..., width) and a bool mask (width,) that is True on real dims."""
    action = np.asarray(action)
    dims = action.shape[-1]
    if dims > width:
        raise UserError(f"action has {dims} dims, more than the padded width {width}")
    padded = np.zeros((*action.shape[:-1], width), dtype=action.dtype)
    padded[..., :dims] = action
    mask = np.zeros(width, dtype=bool)
    mask[:dims] = True
    return padded, mask


def unpad_action(padded: np.ndarray, dims: int) -> np.ndarray:
    """Inverse of `pad_action`: the first `dims` entries of the last axis."""
    padded = np.asarray(padded)
    if dims > padded.shape[-1]:
        raise UserError(f"cannot take {dims} dims from a padded width of {padded.shape[-1]}")
    return padded[..., :dims]
