"""Policies: the `Policy` protocol and scripted baselines of graded quality."""

from .base import Policy
from .scripted import PUSHT_LEVELS, LaggedPolicy, NoisyPolicy, PushTExpert, RandomPolicy, SlowPolicy, make_pusht_policy

__all__ = ["LaggedPolicy", "NoisyPolicy", "PUSHT_LEVELS", "Policy", "PushTExpert", "RandomPolicy", "SlowPolicy",
           "make_pusht_policy"]
