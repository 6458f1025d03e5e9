"""Gymnasium ids (`gymnasium.make("cosmos3_robot/PushT-v0")`, the real simulators) and the native
batched learned env through gymnasium's registry."""

from __future__ import annotations

import gymnasium as gym

from .tasks import register_envs


def make_vec_env(env_id: str | None = None, num_envs: int = 8, **kwargs):
    """The native batched learned env (one model call per step), through gymnasium's registry (default: the
    first registered task's learned simulator)."""
    register_envs()
    if env_id is None:
        from .tasks import REGISTRY

        env_id = next(t.learned_id for t in REGISTRY.values() if t.learned_id)
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
