"""`validate_action`: check an action (or chunk) against its spec before it reaches a model or env.

Policy for out-of-limit values (documented, chosen by `out_of_limits`):
- "clip" (default): values are clipped to the field's [lower, upper]; `report["clipped"]` says how many were
  (envs put it in `info["action_clipped"]`);
- "reject": raise `ActionError` naming the field, the value and the limits;
- "ignore": pass through unchanged.
Wrong shape, non-numeric dtype, NaN and inf always raise.
"""

from __future__ import annotations

import numpy as np

from .spec import EmbodimentSpec, VectorSpec
from ..errors import UserError

OUT_OF_LIMITS = ("clip", "reject", "ignore")


class ActionError(UserError):
    """An action does not fit its spec; the message names the field and the fix."""


def validate_action(
    spec: EmbodimentSpec | VectorSpec,
    action,
    *,
    variant: str | None = None,
    out_of_limits: str = "clip",
    allow_chunk: bool = True,
    report: dict | None = None,
) -> np.ndarray:
    """Return the action as a float32 array of shape (D,) or (T, D), checked and (optionally) clipped; with
    a `report` dict, `report["clipped"]` is the number of values clipped (per row for a chunk)."""
    vector = spec.action_variant(variant) if isinstance(spec, EmbodimentSpec) else spec
    if out_of_limits not in OUT_OF_LIMITS:
        raise UserError(f"out_of_limits = {out_of_limits!r} is not one of {OUT_OF_LIMITS}")
    what = f"action ({vector.name!r}, {vector.dims} dims: {', '.join(f'{f.name}[{f.dims}]' for f in vector.fields)})"
    raw = action.detach().cpu().numpy() if hasattr(action, "detach") else action
    arr = np.asarray(raw)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) \
            or np.issubdtype(arr.dtype, np.bool_):
        raise ActionError(f"{what}: dtype {arr.dtype} is not numeric; pass a float array (np.float32)")
    shapes = f"({vector.dims},)" + (f" or (T, {vector.dims})" if allow_chunk else "")
    if arr.ndim not in ((1, 2) if allow_chunk else (1,)) or arr.shape[-1] != vector.dims:
        raise ActionError(f"{what}: shape {arr.shape}, expected {shapes}")
    if arr.ndim == 2 and len(arr) == 0:
        raise ActionError(f"{what}: an empty chunk {arr.shape}; give at least one action")
    with np.errstate(over="ignore"):  # a value past float32's range becomes inf and is refused below
        arr = arr.astype(np.float32)
    flat = arr.reshape(-1, vector.dims)
    clipped = np.zeros(len(flat), np.int64)
    for field, sl in zip(vector.fields, vector.slices().values()):
        block = flat[:, sl]
        bad = ~np.isfinite(block)
        if bad.any():
            step, dim = map(int, np.argwhere(bad)[0])
            value = block[step, dim]
            at = f"step {step} " if arr.ndim == 2 else ""
            raise ActionError(
                f"{what}: field {field.name!r} has {value} at {at}dim {dim}"
                f" ({field.dim_names[dim]}); replace NaN/inf before stepping"
            )
        outside = (block < field.lower) | (block > field.upper)
        if outside.any() and out_of_limits == "reject":
            step, dim = map(int, np.argwhere(outside)[0])
            raise ActionError(
                f"{what}: field {field.name!r} value {block[step, dim]:.6g} at dim {dim} ({field.dim_names[dim]})"
                f" is outside [{field.lower[dim]:.6g}, {field.upper[dim]:.6g}] {field.unit};"
                " clip it or use out_of_limits='clip'"
            )
        if outside.any() and out_of_limits == "clip":
            flat[:, sl] = np.clip(block, field.lower, field.upper)
            clipped += outside.sum(axis=1)
    if report is not None:
        report["clipped"] = clipped if arr.ndim == 2 else int(clipped[0])
    return flat.reshape(arr.shape)
