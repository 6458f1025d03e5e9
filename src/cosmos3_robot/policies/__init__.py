"""Policies: the `Policy` protocol, task-free wrappers that grade a policy, the LeRobot adapter and
the world model's policy head. Task experts live in their task packages."""

from .base import Policy
from .lerobot_adapter import LeRobotPolicy
from .world_model_policy import WorldModelPolicy
from .wrappers import LaggedPolicy, NoisyPolicy, RandomPolicy, SlowPolicy

__all__ = ["LaggedPolicy", "LeRobotPolicy", "NoisyPolicy", "Policy", "RandomPolicy", "SlowPolicy", "WorldModelPolicy"]
