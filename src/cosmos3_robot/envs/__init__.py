"""Environments: real-simulator adapters (and, later, the learned world-model env)."""

from .real import AlohaRealEnv, PushTRealEnv, action_space_for, make_real_env, observation_space_for

__all__ = ["AlohaRealEnv", "PushTRealEnv", "action_space_for", "make_real_env", "observation_space_for"]
