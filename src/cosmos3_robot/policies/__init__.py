"""Policies: the `Policy` protocol and scripted baselines of graded quality."""

from .base import Policy
from .lerobot_adapter import LeRobotPolicy
from .world_model_policy import WorldModelPolicy
from .scripted import PUSHT_LEVELS, LaggedPolicy, NoisyPolicy, PushTExpert, RandomPolicy, SlowPolicy, make_pusht_policy

__all__ = ["LaggedPolicy", "LeRobotPolicy", "NoisyPolicy", "PUSHT_LEVELS", "Policy", "PushTExpert", "RandomPolicy", "SlowPolicy", "WorldModelPolicy",
           "make_pusht_policy"]
