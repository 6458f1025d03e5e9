"""Small embedding modules: per-embodiment (domain-aware) linear layers for actions and state,
the byte-level text tokenizer the reasoner reads, and the diffusion timestep embedding."""

from __future__ import annotations

import math

import torch
from torch import nn
from ..errors import UserError

PAD, BOS, JUDGE = 256, 257, 258  # byte ids are 0..255


class DomainAwareLinear(nn.Module):
    """A linear layer with one weight matrix per embodiment, picked by domain id (Cosmos 3's
    `DomainAwareLinear`): one backbone serves every embodiment's zero-padded action vector."""

    def __init__(self, n_domains: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_domains, in_dim, out_dim) / math.sqrt(in_dim))
        self.bias = nn.Parameter(torch.zeros(n_domains, out_dim))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """x (b, n, in), domain (b,) long -> (b, n, out)."""
        if not domain.is_meta and (domain.max() >= self.weight.shape[0] or domain.min() < 0):
            raise UserError(f"domain id {domain.tolist()} outside [0, {self.weight.shape[0]})")
        return torch.einsum("bni,bio->bno", x, self.weight[domain]) + self.bias[domain][:, None]


class ByteTokenizer:
    """UTF-8 bytes -> ids, padded/truncated to a fixed length after a BOS token. Cosmos 3 has no
    separate text encoder: the reasoner tower reads the prompt tokens directly."""

    vocab_size = 259

    def __init__(self, max_len: int):
        self.max_len = max_len

    def encode(self, texts: list[str]) -> torch.Tensor:
        out = torch.full((len(texts), self.max_len), PAD, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [BOS, *text.encode("utf-8")][: self.max_len]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [bytes(int(t) for t in row if t < 256).decode("utf-8", errors="replace") for row in ids]


class TimestepEmbedding(nn.Module):
    """Flow time t in [0, 1] -> sinusoidal features -> MLP -> model width (added to noisy tokens)."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t (b,) -> (b, dim)."""
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        angles = (t.float() * 1000.0)[:, None] * freqs[None]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))
