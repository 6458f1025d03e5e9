"""ALOHA: the gym-aloha adapter (insertion, transfer_cube) in the `aloha` spec's schema, and the transfer-cube
task: its scripted expert and ladder (expert.py) and its learned simulator (structured.py, train.py)."""

from ...backends.registry import register_task_entry_point
from ...embodiments.world_frame import register_end_effector
from .real import AlohaRealEnv, AlohaTransferCubeRealEnv

__all__ = ["AlohaRealEnv", "AlohaTransferCubeRealEnv"]

from ..registry import TaskInfo, register_task  # noqa: E402

register_task(TaskInfo(
    name="aloha_transfer_cube", embodiment="aloha", real_id="cosmos3_robot/AlohaTransferCubeReal-v0",
    real_entry_point="cosmos3_robot.tasks.aloha.real:AlohaTransferCubeRealEnv",
    learned_id="cosmos3_robot/AlohaTransferCube-v0", checkpoint="aloha_transfer_cube", episode_limit=200,
    policy_factory="cosmos3_robot.tasks.aloha.expert:make_aloha_policy",
    demo_policies=("expert", "expert-noise5", "random"), trainer="cosmos3_robot.tasks.aloha.train:train_sim",
    aliases=("aloha",)))
def _right_hand(states):
    """Where the right hand's grasp point is (world frame, m) for the `aloha` spec's states: Rerun's 3-D path."""
    from .structured import hand_path

    return hand_path(states)


register_end_effector("aloha", _right_hand)
# its structured world, the only class a checkpoint of this task may name as "task"
register_task_entry_point("cosmos3_robot.tasks.aloha.structured:AlohaTransferCubeWorld")
