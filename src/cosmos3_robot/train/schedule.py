"""Learning-rate schedules the fits share."""

from __future__ import annotations

import math

import torch


def warmup_cosine(opt: torch.optim.Optimizer, total: int, warmup: int = 100, start: int = 0):
    """Linear warm-up then cosine decay to 0 over `total` steps; `start` resumes mid-schedule."""
    warmup = max(1, min(warmup, total // 10 or 1))

    def factor(step: int) -> float:
        s = step + start
        return min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def one_cycle(opt, lr: float, steps: int):
    """OneCycleLR with a 5% warm-up that is at least two steps long (OneCycleLR divides by the warm-up's
    length minus one, so a one-step warm-up crashes)."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, steps),
                                               pct_start=min(0.3, max(0.05, 2 / max(1, steps))))
