"""Policy wrappers that degrade any policy in a controlled way (graded ladders of baselines): Gaussian
action noise, stale observations, a speed limit; and uniform random actions. Task-free: limits come
from the embodiment's action bounds."""

from __future__ import annotations

from collections import deque

import numpy as np
from ..errors import UserError

STATE_KEY = "observation.state"


class NoisyPolicy:
    """Adds zero-mean Gaussian noise of `sigma` (action units) to another policy's actions, clipped to
    [low, high] when given."""

    def __init__(self, policy, sigma: float, name: str, seed: int = 0, low=None, high=None):
        self.policy, self.sigma, self.name, self._seed = policy, sigma, name, seed
        self.low, self.high = low, high
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)
        self.policy.reset(seed)

    def select_action(self, observation):
        a = self.policy.select_action(observation)
        a = a + self.rng.normal(0, self.sigma, size=a.shape)
        if self.low is not None or self.high is not None:
            a = np.clip(a, self.low, self.high)
        return a.astype(np.float32)


class LaggedPolicy:
    """Acts on the observation from `lag` steps ago (a slow perception pipeline)."""

    def __init__(self, policy, lag: int, name: str):
        self.policy, self.lag, self.name = policy, lag, name
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.buffer: deque = deque(maxlen=self.lag + 1)
        self.policy.reset(seed)

    def select_action(self, observation):
        self.buffer.append(observation)
        return self.policy.select_action(self.buffer[0])


class SlowPolicy:
    """Moves at most `max_step` units per step toward the wrapped policy's target, for position-target
    actions whose current value is the state's leading dims."""

    def __init__(self, policy, max_step: float, name: str):
        self.policy, self.max_step, self.name = policy, max_step, name

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def select_action(self, observation):
        target = self.policy.select_action(observation)
        agent = np.asarray(observation[STATE_KEY], dtype=np.float64)[: len(target)]
        delta = target - agent
        norm = np.linalg.norm(delta)
        if norm > self.max_step:
            delta *= self.max_step / norm
        return (agent + delta).astype(np.float32)


class StickyPolicy:
    """With probability `p` per step the new command does not arrive and the last one repeats (a lossy
    actuation link; "sticky actions", Machado et al. 2018)."""

    def __init__(self, policy, p: float, name: str, seed: int = 0):
        if not 0 <= p < 1:
            raise UserError(f"sticky probability p={p} must be in [0, 1)")
        self.policy, self.p, self.name, self._seed = policy, p, name, seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)
        self.last = None
        self.policy.reset(seed)

    def select_action(self, observation):
        a = self.policy.select_action(observation)
        if self.last is not None and self.rng.random() < self.p:
            a = self.last
        self.last = np.asarray(a, np.float32).copy()
        return self.last


class OffsetPolicy:
    """Shifts every action by a constant `offset` (a calibration error), clipped to [low, high] when given."""

    def __init__(self, policy, offset, name: str, low=None, high=None):
        self.policy, self.offset, self.name, self.low, self.high = policy, offset, name, low, high

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def select_action(self, observation):
        a = np.asarray(self.policy.select_action(observation), np.float64) + self.offset
        if self.low is not None or self.high is not None:
            a = np.clip(a, self.low, self.high)
        return a.astype(np.float32)


class RandomPolicy:
    """Uniform random actions in [low, high] (scalars or per-dim arrays)."""

    def __init__(self, name: str = "random", low: float = 0.0, high: float = 512.0, dims: int = 2, seed: int = 0):
        self.name, self.low, self.high, self.dims, self._seed = name, low, high, dims, seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)

    def select_action(self, observation):
        return self.rng.uniform(self.low, self.high, size=self.dims).astype(np.float32)


