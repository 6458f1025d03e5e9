"""The Franka cube scene for the `droid` spec: MuJoCo pick-and-place with DROID's cameras and
calibration, IK, the pixel + calibration pick-and-place expert and its ladder, and the learned scene's pieces
(perception.py, kinematics.py, structured.py, train.py)."""

from ...backends.registry import register_task_entry_point
from .expert import LADDER, FrankaPickPlaceExpert, make_franka_policy
from .real import FrankaCubeRealEnv, FrankaIK, exterior_calibrations

SHIPPED_CHECKPOINT = "franka_cube"  # the learned simulator (scripts/train_franka_cube.sh)

__all__ = ["LADDER", "SHIPPED_CHECKPOINT", "FrankaCubeRealEnv", "FrankaIK", "FrankaPickPlaceExpert", "exterior_calibrations",
           "make_franka_policy"]

# its structured world, the only class a checkpoint of this task may name as "task"
register_task_entry_point("cosmos3_robot.tasks.franka_cube.structured:FrankaCubeWorld")
