"""3D multimodal rotary position embedding (mRoPE), as in Qwen3-VL and Cosmos 3.

Every token has a (t, h, w) position. The head dimension's rotary frequency slots are split between
the three axes in Cosmos 3's [24, 20, 20]-of-64 proportion, *interleaved*: slot j rotates by the h
position when j % 3 == 1 and j < 3 * h_section, by w when j % 3 == 2 and j < 3 * w_section, by t
otherwise. A text token carries the same index on all three axes, so a pure text sequence gets
exactly standard 1-D RoPE.
"""

from __future__ import annotations

import torch


def mrope_sections(n_slots: int, section: tuple[int, int, int] = (24, 20, 20)) -> tuple[int, int, int]:
    """Rescale the (t, h, w) split of 64 slots to `n_slots` = head_dim / 2."""
    total = sum(section)
    h = section[1] * n_slots // total
    w = section[2] * n_slots // total
    return n_slots - h - w, h, w


def axis_of_slot(n_slots: int, section: tuple[int, int, int] = (24, 20, 20)) -> torch.Tensor:
    """(n_slots,) long tensor: 0 (t), 1 (h) or 2 (w) for each rotary frequency slot (interleaved)."""
    _, h, w = mrope_sections(n_slots, section)
    j = torch.arange(n_slots)
    axis = torch.zeros(n_slots, dtype=torch.long)
    axis[(j % 3 == 1) & (j < 3 * h)] = 1
    axis[(j % 3 == 2) & (j < 3 * w)] = 2
    return axis


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0,
                section: tuple[int, int, int] = (24, 20, 20)) -> tuple[torch.Tensor, torch.Tensor]:
    """positions (3, L) (t, h, w) -> cos, sin of shape (L, head_dim) in the rotate-half layout."""
    n_slots = head_dim // 2
    inv_freq = theta ** (-torch.arange(n_slots, dtype=torch.float64) * 2 / head_dim)
    axis = axis_of_slot(n_slots, section)
    pos = positions.to(torch.float64)[axis]  # (n_slots, L): each slot reads its axis' position
    angles = (pos * inv_freq[:, None]).T  # (L, n_slots)
    angles = torch.cat([angles, angles], dim=-1).to(torch.float32)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (b, heads, L, head_dim) rotated by per-position angles (rotate-half convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def text_positions(n: int, start: int = 0) -> torch.Tensor:
    """(3, n): text tokens carry the same index on t, h and w."""
    p = torch.arange(start, start + n)
    return torch.stack([p, p, p])


def grid_positions(t: int, rows: int, cols: int, col_offset: int = 0) -> torch.Tensor:
    """(3, rows*cols) for one frame's latent grid at time index t; spatial indices restart per frame
    (cameras tile side by side through `col_offset`)."""
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols) + col_offset, indexing="ij")
    return torch.stack([torch.full((rows * cols,), t), r.reshape(-1), c.reshape(-1)])
