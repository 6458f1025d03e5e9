"""Rectified flow: x_t = (1 - t) * x_data + t * noise, the model predicts v = noise - x_data.
t = 0 is clean data, t = 1 pure noise; Euler steps go from t = 1 down to 0."""

from __future__ import annotations

import torch
from ..errors import UserError


def sample_time(n: int, shift: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal times (SD3): t = sigmoid(N(0, 1)), then shifted toward noise by `shift`."""
    t = torch.sigmoid(torch.randn(n, generator=generator))
    return shift * t / (1 + (shift - 1) * t)


def add_noise(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Interpolate data and noise at per-sample times t (b,)."""
    t = t.reshape(-1, *([1] * (x.dim() - 1)))
    return (1 - t) * x + t * noise


def velocity_target(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x


def euler_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 times from 1 to 0 (shifted like training so few steps spend time where it matters)."""
    if steps < 1:
        raise UserError(f"sampling steps = {steps} must be >= 1")
    t = torch.linspace(1, 0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)
