"""Per-dimension normalization of actions and states, from LeRobot's `meta/stats.json` layout.

Each dimension has a mode; all modes are the affine map `y = (x - center) / scale`:
- quantile (Cosmos 3 default): q01 -> -1, q99 -> +1
- min_max: min -> -1, max -> +1
- mean_std: zero mean, unit variance
- identity: unchanged
A dimension whose range (or std) is ~0 gets scale 1, so it maps to `x - center` (0 on its data)
instead of NaN. With `clamp`, normalized values are clipped to [-clamp, clamp]; the inverse is
exact for values inside that range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .spec import NORMALIZATION_MODES, VectorSpec
from ..errors import UnknownName, UserError

STAT_KEYS = ("mean", "std", "min", "max", "q01", "q99")
_EPS = 1e-8


def compute_stats(data: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of (N, D) samples in LeRobot's layout (mean, std, min, max, q01, q99, count)."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        raise UserError(f"compute_stats expects (N, D) samples with N > 0, got shape {data.shape}")
    q01, q99 = np.quantile(data, [0.01, 0.99], axis=0)
    return {
        "mean": data.mean(0),
        "std": data.std(0),
        "min": data.min(0),
        "max": data.max(0),
        "q01": q01,
        "q99": q99,
        "count": np.array([len(data)]),
    }


class Normalizer:
    """Normalizes one feature (e.g. `action`) dimension by dimension; works on numpy and torch."""

    def __init__(self, stats: Mapping[str, Sequence[float]], modes: str | Sequence[str], clamp: float | None = None,
                 feature: str = "feature"):
        self.feature = feature
        dims = None
        for key, value in stats.items():
            if key in STAT_KEYS:
                dims = np.asarray(value).reshape(-1).size
                break
        if dims is None:
            raise UserError(f"stats for {feature!r} have none of {STAT_KEYS}; got keys {sorted(stats)}")
        modes = (modes,) * dims if isinstance(modes, str) else tuple(modes)
        if len(modes) != dims:
            raise UserError(f"{feature!r}: {len(modes)} normalization modes for {dims} dims")
        bad = sorted({m for m in modes if m not in NORMALIZATION_MODES})
        if bad:
            raise UserError(f"{feature!r}: unknown normalization mode(s) {bad}; choose from {NORMALIZATION_MODES}")

        def stat(key: str) -> np.ndarray:
            if key not in stats:
                raise UnknownName(
                    f"{feature!r}: normalization needs stat {key!r} (meta/stats.json); present: {sorted(stats)}"
                )
            arr = np.asarray(stats[key], dtype=np.float64).reshape(-1)
            if arr.size != dims:
                raise UserError(f"{feature!r}: stat {key!r} has {arr.size} values, expected {dims}")
            if not np.all(np.isfinite(arr)):
                raise UserError(f"{feature!r}: stat {key!r} contains NaN or inf: {arr.tolist()}")
            return arr

        center, scale = np.zeros(dims), np.ones(dims)
        for mode, (lo_key, hi_key) in (("quantile", ("q01", "q99")), ("min_max", ("min", "max"))):
            m = np.array([x == mode for x in modes])
            if m.any():
                lo, hi = stat(lo_key), stat(hi_key)
                center[m] = ((hi + lo) / 2)[m]
                scale[m] = ((hi - lo) / 2)[m]
        m = np.array([x == "mean_std" for x in modes])
        if m.any():
            center[m], scale[m] = stat("mean")[m], stat("std")[m]
        scale[scale < _EPS] = 1.0  # zero-variance dimension: keep it finite, centered on its value
        self.modes, self.center, self.scale, self.clamp = modes, center, scale, clamp

    @classmethod
    def from_spec(cls, vector: VectorSpec, stats: Mapping, clamp: float | None = None, feature: str | None = None):
        """Per-field modes from the spec (e.g. gripper min_max, poses quantile)."""
        return cls(stats, vector.normalization_modes, clamp=clamp, feature=feature or vector.name)

    @classmethod
    def fit(cls, data: np.ndarray, modes: str | Sequence[str], clamp: float | None = None, feature: str = "feature"):
        return cls(compute_stats(data), modes, clamp=clamp, feature=feature)

    @property
    def dims(self) -> int:
        return self.center.size

    def _params(self, x):
        if x.shape[-1] != self.dims:
            raise UserError(f"{self.feature!r}: last dimension is {x.shape[-1]}, expected {self.dims}")
        if type(x).__module__.startswith("torch"):
            import torch

            return (torch.as_tensor(self.center, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.scale, dtype=x.dtype, device=x.device))
        return self.center, self.scale

    def normalize(self, x):
        x = x if type(x).__module__.startswith("torch") else np.asarray(x, dtype=np.float64)
        center, scale = self._params(x)
        y = (x - center) / scale
        if self.clamp is not None:
            y = y.clip(-self.clamp, self.clamp)
        return y

    def unnormalize(self, y):
        y = y if type(y).__module__.startswith("torch") else np.asarray(y, dtype=np.float64)
        center, scale = self._params(y)
        return y * scale + center

    def to_dict(self) -> dict:
        return {"feature": self.feature, "modes": list(self.modes), "center": self.center.tolist(),
                "scale": self.scale.tolist(), "clamp": self.clamp}

    @classmethod
    def from_dict(cls, d: Mapping) -> Normalizer:
        """Restore from `to_dict()` (what checkpoints store next to the weights)."""
        obj = cls.__new__(cls)
        obj.feature, obj.modes, obj.clamp = d["feature"], tuple(d["modes"]), d.get("clamp")
        obj.center = np.asarray(d["center"], dtype=np.float64)
        obj.scale = np.asarray(d["scale"], dtype=np.float64)
        if obj.center.shape != obj.scale.shape or len(obj.modes) != obj.center.size:
            raise UserError(f"normalizer dict for {obj.feature!r} has mismatched center/scale/modes lengths")
        return obj


def normalizers_from_stats(spec, stats: Mapping[str, Mapping], action: str | None = None,
                           clamp: float | None = None) -> dict[str, Normalizer]:
    """Normalizers for `action` and `observation.state` from a LeRobot `meta/stats.json` dict."""
    out = {}
    for key, vector in (("action", spec.action_variant(action)), ("observation.state", spec.state)):
        if vector.dims == 0:
            continue
        if key not in stats:
            raise UnknownName(f"stats have no feature {key!r} (needed by embodiment {spec.name!r}); keys: {sorted(stats)}")
        out[key] = Normalizer.from_spec(vector, stats[key], clamp=clamp, feature=key)
    return out
