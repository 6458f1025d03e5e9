"""The Franka cube scene for the `droid` spec: MuJoCo pick-and-place with DROID's cameras and
calibration, IK, and the pixel + calibration pick-and-place expert."""

from .expert import FrankaPickPlaceExpert, make_franka_policy
from .real import FrankaCubeRealEnv, FrankaIK, exterior_calibrations

__all__ = ["FrankaCubeRealEnv", "FrankaIK", "FrankaPickPlaceExpert", "exterior_calibrations", "make_franka_policy"]
