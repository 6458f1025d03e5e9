"""The one training loop (`fit`), its learning-rate schedules and the JSONL logger every fit writes with."""

from .fit import JsonlLogger, fit, fit_servo
from .schedule import one_cycle, warmup_cosine

__all__ = ["JsonlLogger", "fit", "fit_servo", "one_cycle", "warmup_cosine"]
