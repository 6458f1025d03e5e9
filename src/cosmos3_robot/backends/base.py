"""What every learned-simulator backend speaks: a `Context` to start from, a `Session` it carries
between steps, a `Prediction` per step, and the `Backend` protocol itself (README, Architecture)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..embodiments import EmbodimentSpec
from ..errors import UserError


@dataclass(frozen=True)
class Context:
    """What a backend starts from, for a batch of B sessions: `frames` camera -> (B, history, H, W, 3)
    uint8 at the spec's resolution, `state` (B, history, S) in physical units, the task `instruction`."""

    frames: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str | None = None

    @property
    def batch(self) -> int:
        return int(self.state.shape[0])

    @property
    def history(self) -> int:
        return int(self.state.shape[1])


@dataclass
class Prediction:
    """One step of B sessions: `frames` camera -> (B, H, W, 3) uint8 at the spec's resolution, `state`
    (B, S) inside the spec's limits, `reward` (B,), `success` (B,) bool, extra per-session `info` arrays."""

    frames: dict[str, np.ndarray]
    state: np.ndarray
    reward: np.ndarray
    success: np.ndarray
    info: dict[str, np.ndarray] = field(default_factory=dict)


def _take(value, idx: np.ndarray):
    return value[torch.as_tensor(idx)] if isinstance(value, torch.Tensor) else value[idx]


@dataclass
class Session:
    """A backend's rollout state for B sessions: arrays or tensors with a leading batch dim, plus the
    random generator its sampler draws from. Envs pick and replace rows (`select`, `assign`) without
    knowing what the backend keeps."""

    data: dict[str, Any]
    generator: torch.Generator | None = None
    instruction: str | None = None

    def __len__(self) -> int:
        return len(next(iter(self.data.values())))

    def select(self, idx) -> Session:
        idx = np.asarray(idx, dtype=np.int64)
        return Session({k: _take(v, idx) for k, v in self.data.items()}, self.generator, self.instruction)

    def assign(self, idx, other: Session) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        for k, v in self.data.items():
            v[torch.as_tensor(idx) if isinstance(v, torch.Tensor) else idx] = other.data[k]


def concat_sessions(sessions: Sequence[Session]) -> Session:
    """Sessions of one backend -> one Session holding all their rows, in order (a server steps the sessions of
    several requests in one call). Only sessions without a batch-wide `generator` can join: their randomness
    lives in their rows, so a row samples the same in any batch. Sessions with a generator, of different
    backends or with different instructions raise ValueError."""
    if any(s.generator is not None for s in sessions):
        raise ValueError("a session with a batch-wide generator cannot join others (its noise would change)")
    keys = sessions[0].data.keys()
    if any(s.data.keys() != keys for s in sessions):
        raise ValueError("sessions of different backends cannot join")
    if len({s.instruction for s in sessions}) > 1:
        raise ValueError("sessions with different instructions cannot join")
    data = {k: torch.cat([s.data[k] for s in sessions]) if isinstance(sessions[0].data[k], torch.Tensor)
            else np.concatenate([s.data[k] for s in sessions]) for k in keys}
    return Session(data, None, sessions[0].instruction)


@runtime_checkable
class Backend(Protocol):
    """A learned simulator's model. `reset` starts B sessions from a context (its history may be shorter
    than `history`: the first step repeats); `step` advances them by one action each, (B, A) in physical
    units of the spec's default action, or of the variant the backend names in an optional `action_variant`
    attribute (e.g. DROID's "joint_position"; see `action_variant_of`). `success_threshold`: reward at or above
    it is success. `reset`'s seed is one per session (the envs pass one per sub-env) or one int for the batch."""

    spec: EmbodimentSpec
    cameras: tuple[str, ...]
    history: int
    success_threshold: float

    def reset(self, ctx: Context, seed: int | Sequence[int] | None = None) -> Session: ...

    def step(self, session: Session, actions: np.ndarray) -> Prediction: ...


def action_variant_of(backend) -> str | None:
    """The action variant a backend steps with (its optional `action_variant`), None for the spec's default."""
    return getattr(backend, "action_variant", None)


def session_seeds(seed: int | Sequence[int] | None, batch: int) -> np.ndarray:
    """A backend's per-session seeds (B,) int64: a list gives each session its own (the envs pass one per
    sub-env, so a session samples the same whether it runs alone or in a batch); an int s gives s + i."""
    if seed is None:
        seed = 0
    if np.ndim(seed) == 0:
        return int(seed) + np.arange(batch, dtype=np.int64)
    seeds = np.asarray(seed, np.int64).reshape(-1)
    if len(seeds) != batch:
        raise UserError(f"reset got {len(seeds)} seeds for a batch of {batch} sessions")
    return seeds


def pad_history(values: np.ndarray, history: int) -> np.ndarray:
    """(B, T, ...) -> (B, history, ...): the last `history` steps, the first repeated before the start."""
    if values.shape[1] >= history:
        return values[:, -history:]
    pad = np.repeat(values[:, :1], history - values.shape[1], axis=1)
    return np.concatenate([pad, values], axis=1)
