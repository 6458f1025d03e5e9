"""Mixture-of-Transformers block: each tower (reasoner, generator) has its own norms, q/k norms,
QKV/output projections and MLP; attention is one joint softmax over the whole sequence.

Token layout inside a block: the first `n_reasoner` tokens belong to the reasoner tower, the rest
to the generator tower (the caller orders the sequence that way). The attention mask (who sees
whom) is the caller's; see `world_model.attention_mask`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import ModelConfig
from .mrope import apply_rope

REASONER, GENERATOR = 0, 1


class TowerLayer(nn.Module):
    """One tower's weights for one layer: pre-norm attention projections and a SwiGLU MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.attn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.wqkv = nn.Linear(cfg.dim, (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim, bias=False)
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.norm_eps)
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.norm_eps)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.mlp_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.w_gate_up = nn.Linear(cfg.dim, 2 * cfg.ffn_dim, bias=False)
        self.w_down = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.wqkv(self.attn_norm(x)).split(
            [self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim], dim=-1
        )
        q = self.q_norm(rearrange(q, "b l (h d) -> b h l d", d=self.head_dim))
        k = self.k_norm(rearrange(k, "b l (h d) -> b h l d", d=self.head_dim))
        v = rearrange(v, "b l (h d) -> b h l d", d=self.head_dim)
        return q, k, v

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w_gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return self.w_down(F.silu(gate) * up)


class MoTBlock(nn.Module):
    """A transformer layer with per-tower weights and shared (joint) attention."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.towers = nn.ModuleList([TowerLayer(cfg), TowerLayer(cfg)])

    def _split(self, x: torch.Tensor, n_reasoner: int):
        return [(t, part) for t, part in ((REASONER, x[:, :n_reasoner]), (GENERATOR, x[:, n_reasoner:]))
                if part.shape[1]]

    def forward(
        self,
        x: torch.Tensor,  # (b, L, dim)
        n_reasoner: int,
        cos: torch.Tensor,  # (L, head_dim)
        sin: torch.Tensor,
        mask: torch.Tensor,  # (L, L_past + L) bool, True = may attend
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        parts = self._split(x, n_reasoner)
        qkv = [self.towers[t].qkv(part) for t, part in parts]
        q, k, v = (torch.cat([p[i] for p in qkv], dim=2) for i in range(3))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        new_kv = (k, v)
        if past_kv is not None:
            k, v = torch.cat([past_kv[0], k], dim=2), torch.cat([past_kv[1], v], dim=2)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        attn = rearrange(attn, "b h l d -> b l (h d)")
        out, start = [], 0
        for t, part in parts:
            stop = start + part.shape[1]
            h = part + self.towers[t].wo(attn[:, start:stop])
            out.append(h + self.towers[t].mlp(h))
            start = stop
        return torch.cat(out, dim=1), new_kv
