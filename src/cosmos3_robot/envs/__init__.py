"""Environments: real-simulator adapters and the learned world-model env (single and batched)."""

from .franka import FrankaCubeRealEnv, FrankaIK
from .real import AlohaRealEnv, PushTRealEnv, action_space_for, make_real_env, observation_space_for
from .vector_env import WorldModelVectorEnv
from .world_model_env import LearnedDynamics, WorldModelEnv, load_world_model, shipped_checkpoint

__all__ = [
    "AlohaRealEnv",
    "FrankaCubeRealEnv",
    "FrankaIK",
    "LearnedDynamics",
    "PushTRealEnv",
    "WorldModelEnv",
    "WorldModelVectorEnv",
    "action_space_for",
    "load_world_model",
    "make_real_env",
    "observation_space_for",
    "shipped_checkpoint",
]
