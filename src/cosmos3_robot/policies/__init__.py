"""Policies: the `Policy` protocol, task-free wrappers that grade a policy, the LeRobot adapter and
the world model's policy head. Task experts live in their task packages."""

from importlib import import_module

from .base import Policy
from .wrappers import LaggedPolicy, NoisyPolicy, OffsetPolicy, RandomPolicy, SlowPolicy, StickyPolicy

# the adapters pull in torch / lerobot: imported on first use, so the scripted ladders load light
_LAZY = {"LeRobotPolicy": ".lerobot_adapter", "StructuredPolicy": ".structured_policy",
         "WorldModelPolicy": ".world_model_policy"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LaggedPolicy", "LeRobotPolicy", "NoisyPolicy", "OffsetPolicy", "Policy", "RandomPolicy", "SlowPolicy",
           "StickyPolicy", "StructuredPolicy", "WorldModelPolicy"]
