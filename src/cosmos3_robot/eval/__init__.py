"""Evaluation: closed-loop rollouts, data collection, real-vs-learned comparison."""

from .paired import frame_psnr, paired_rollout, record
from .rollout import collect, make_writer, rollout

__all__ = ["collect", "frame_psnr", "make_writer", "paired_rollout", "record", "rollout"]
