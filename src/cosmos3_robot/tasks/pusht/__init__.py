"""PushT: gym-pusht adapter, the T's pose read off pixels, goal coverage, the scripted expert ladder,
planar-push dynamics and the structured backend's PushT pieces."""

import numpy as np

from ...backends.registry import register_task_entry_point
from ...embodiments import load_spec
from ...embodiments.perception import Perception, register_observation_feature, register_perception
from ...embodiments.world_frame import register_end_effector
from .experts import PUSHT_LEVELS, PushTExpert, make_pusht_policy
from .real import PushTRealEnv, random_pusht_frames
from .vision import block_pose_features, environment_state, project_block_pose_features

# the learned simulator gym.make("cosmos3_robot/PushT-v0") runs; "pusht_small" draws sharper frames, 4x slower
SHIPPED_CHECKPOINT = "pusht_tower"
SHIPPED_POLICY = "pusht_policy"  # the same checkpoint plus the policy head (scripts/train_pusht_policy.sh)

# the T's pose (x, y, cos, sin), read off each frame: a world model's perceived state (--perceive-state)
register_perception("pusht_block_pose", Perception(4, block_pose_features, project_block_pose_features))
# gym-pusht's keypoints of the T (LeRobot's observation.environment_state, as lerobot/pusht_keypoints), read off the
# camera frame, for LeRobot policies trained on them (scripts/lerobot_ladder.py)
_IMAGE_KEY = load_spec("pusht").cameras[0].key
register_observation_feature("pusht", "observation.environment_state", lambda obs: environment_state(obs[_IMAGE_KEY]))

__all__ = ["PUSHT_LEVELS", "PushTExpert", "PushTRealEnv", "SHIPPED_CHECKPOINT", "SHIPPED_POLICY",
           "make_pusht_policy",
           "random_pusht_frames"]

# its structured world, the only class a checkpoint of this task may name as "task"
register_task_entry_point("cosmos3_robot.tasks.pusht.structured:PushTWorld")


def workspace_to_world(points_xy: np.ndarray) -> np.ndarray:
    """PushT workspace units (y down) -> world meters on the table plane: X = x/1000, Y = -y/1000, Z = 0."""
    p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([p[:, 0] / 1000.0, -p[:, 1] / 1000.0, np.zeros(len(p))])


register_end_effector("pusht", lambda states: workspace_to_world(states[:, :2]))  # the pusher: agent_pos


from ..registry import TaskInfo, register_task  # noqa: E402

register_task(TaskInfo(
    name="pusht", embodiment="pusht", real_id="cosmos3_robot/PushTReal-v0",
    real_entry_point="cosmos3_robot.tasks.pusht.real:PushTRealEnv", learned_id="cosmos3_robot/PushT-v0",
    checkpoint=SHIPPED_CHECKPOINT, episode_limit=300,  # gym-pusht's
    policy_factory="cosmos3_robot.tasks.pusht:make_pusht_policy", policy_head=SHIPPED_POLICY,
    demo_policies=("expert", "expert-noise0.4", "random"), success_kwarg="success_threshold",
    trainer="cosmos3_robot.tasks.pusht.recipe:train_sim", demo_steps=120,
    commands="cosmos3_robot.tasks.pusht.cli:add_commands"))
