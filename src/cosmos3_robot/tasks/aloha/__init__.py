"""ALOHA: the gym-aloha adapter (insertion, transfer_cube) in the `aloha` spec's schema."""

from .real import AlohaRealEnv

__all__ = ["AlohaRealEnv"]

from ..registry import TaskInfo, register_task  # noqa: E402

register_task(TaskInfo(name="aloha", embodiment="aloha", real_id="cosmos3_robot/AlohaReal-v0",
                       real_entry_point="cosmos3_robot.tasks.aloha.real:AlohaRealEnv"))
