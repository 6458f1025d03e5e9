"""The Franka cube scene for the `droid` spec: MuJoCo pick-and-place with DROID's cameras and
calibration, IK, the pixel + calibration pick-and-place expert and its ladder, and the learned scene's pieces
(perception.py, kinematics.py, structured.py, train.py)."""

from .expert import LADDER, FrankaPickPlaceExpert, make_franka_policy
from .real import FrankaCubeRealEnv, FrankaIK, exterior_calibrations

SHIPPED_CHECKPOINT = "franka_cube"  # the learned simulator (scripts/train_franka_cube.sh)

__all__ = ["LADDER", "SHIPPED_CHECKPOINT", "FrankaCubeRealEnv", "FrankaIK", "FrankaPickPlaceExpert", "exterior_calibrations",
           "make_franka_policy"]
