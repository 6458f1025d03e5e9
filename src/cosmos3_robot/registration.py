"""Gymnasium ids: `gymnasium.make("cosmos3_robot/PushT-v0")` (learned) and the real simulators
`.../PushTReal-v0`, `.../AlohaReal-v0`, `.../FrankaCubeReal-v0`."""

from __future__ import annotations

import gymnasium as gym

def register_envs() -> None:
    if "cosmos3_robot/PushT-v0" in gym.registry:
        return
    gym.register(id="cosmos3_robot/PushT-v0", entry_point="cosmos3_robot.envs.world_model_env:WorldModelEnv",
                 vector_entry_point="cosmos3_robot.envs.vector_env:WorldModelVectorEnv")
    gym.register(id="cosmos3_robot/PushTReal-v0", entry_point="cosmos3_robot.envs.real:PushTRealEnv")
    gym.register(id="cosmos3_robot/AlohaReal-v0", entry_point="cosmos3_robot.envs.real:AlohaRealEnv")
    gym.register(id="cosmos3_robot/FrankaCubeReal-v0", entry_point="cosmos3_robot.envs.franka:FrankaCubeRealEnv")


def make_vec_env(env_id: str = "cosmos3_robot/PushT-v0", num_envs: int = 8, **kwargs):
    """The native batched learned env (one model call per step), through gymnasium's registry."""
    register_envs()
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
