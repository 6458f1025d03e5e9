"""The Generator tower in policy mode: the same entity tokens as the dynamics (`entity_tower`), read without
a future action, and a flow head that samples a whole action chunk from them.

The tower's layers encode one token per entity, each seeing the others in its own frame, and an action
token that carries the last two actions taken. A chunk head (an MLP over the entity tokens, the noisy chunk
and the flow time, as Diffusion Policy and pi0 put an action expert on top of a backbone) predicts the
rectified-flow velocity of the whole chunk; a few Euler steps from noise sample it (`flow_steps`, 1-4).
When the action's first dims are a position target of the first entity (the tower's `action_kind`), the
chunk is expressed relative to that entity's position, so a push looks the same wherever it happens;
every dim is scaled by its spread in the training data (`action_scale`, set by `fit_entity_policy`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .entity_geometry import KINDS
from .entity_tower import EntityTower, EntityTowerConfig
from .flow import add_noise, euler_schedule, sample_time, velocity_target
from ..errors import UserError


@dataclass
class EntityPolicyConfig:
    tower: dict  # EntityTowerConfig dict: the entities, the action's bounds and kind, the tower's size
    chunk: int = 16  # actions predicted per call
    n_action_steps: int = 1  # actions played of each chunk before the next call (the agent's default)
    flow_steps: int = 4
    candidates: int = 1  # chunks the agent samples per call, keeping the one its own dynamics imagines best
    horizon: int = 0  # imagined steps each candidate is scored over (0: the whole chunk)
    draws: int = 1  # imagined futures per candidate, on independent noise; its score is the worst of them
    head_width: int = 256
    action_scale: list[float] = field(default_factory=list)  # per action dim (set by fit_entity_policy)

    def __post_init__(self):
        if self.chunk < 1 or self.flow_steps < 1 or self.candidates < 1 or self.draws < 1:
            raise UserError(f"EntityPolicyConfig: chunk={self.chunk}, flow_steps={self.flow_steps}, "
                             f"candidates={self.candidates} and draws={self.draws} must be >= 1")
        if not 0 <= self.horizon <= self.chunk:
            raise UserError(f"EntityPolicyConfig: horizon={self.horizon} must lie in 0..chunk={self.chunk} "
                             "(0: the whole chunk)")
        if not 1 <= self.n_action_steps <= self.chunk:
            raise UserError(f"EntityPolicyConfig: n_action_steps={self.n_action_steps} must lie in "
                             f"1..chunk={self.chunk}")
        EntityTowerConfig.from_dict(self.tower)  # its own checks

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EntityPolicyConfig:
        return cls(**d)


class EntityPolicy(nn.Module):
    """States are lists in entity order of (B, state_dims) tensors in the task's units (as `EntityTower`);
    `last_action` / `prev_action` (B, A) are the actions that led to `now` and to `prev`."""

    def __init__(self, cfg: EntityPolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.tower = EntityTower(EntityTowerConfig.from_dict(cfg.tower))
        tc = self.tower.cfg
        n_ent, A, H = len(tc.entities), tc.action_dim, cfg.chunk
        self.head = nn.Sequential(nn.Linear(n_ent * tc.dim + H * A + 16, cfg.head_width), nn.SiLU(),
                                  nn.Linear(cfg.head_width, cfg.head_width), nn.SiLU(),
                                  nn.Linear(cfg.head_width, H * A))
        scale = cfg.action_scale or [1.0] * A
        self.register_buffer("action_scale", torch.tensor(scale, dtype=torch.float32), persistent=False)
        self._relative = KINDS[tc.action_kind][0] if tc.action_kind else 0

    def set_action_scale(self, scale: torch.Tensor) -> None:
        self.action_scale.copy_(scale.clamp_min(1e-6))
        self.cfg.action_scale = self.action_scale.tolist()

    def encode(self, now, prev, last_action, prev_action) -> torch.Tensor:
        return self.tower.encode(now, prev, last_action, prev_action).flatten(1)  # (B, E * dim)

    def to_chunk(self, actions: torch.Tensor, now) -> torch.Tensor:
        """Absolute actions (B, H, A) -> the flow's normalized chunk (B, H * A)."""
        rel = actions.clone()
        if self._relative:
            rel[..., : self._relative] -= now[0][:, None, : self._relative]
        return (rel / self.action_scale).flatten(1)

    def from_chunk(self, x: torch.Tensor, now) -> torch.Tensor:
        actions = x.reshape(x.shape[0], self.cfg.chunk, -1) * self.action_scale
        if self._relative:
            actions = torch.cat([actions[..., : self._relative] + now[0][:, None, : self._relative],
                                 actions[..., self._relative :]], -1)
        return actions

    def velocity(self, h: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([h, x, self.tower.time_embedding(t)], -1))

    def loss(self, now, prev, last_action, prev_action, chunk: torch.Tensor, generator=None) -> dict:
        """Rectified-flow loss on the normalized chunk (B, H, A) of the actions that followed."""
        h = self.encode(now, prev, last_action, prev_action)
        x = self.to_chunk(chunk, now)
        noise = torch.randn(x.shape, generator=generator)
        t = sample_time(x.shape[0], generator=generator)
        v = self.velocity(h, add_noise(x, noise, t), t)
        return {"loss": ((v - velocity_target(x, noise)) ** 2).mean()}

    @torch.no_grad()
    def sample(self, now, prev, last_action, prev_action, flow_steps: int | None = None,
               generator=None) -> torch.Tensor:
        """-> an action chunk (B, H, A) in the task's units, clipped to the action bounds."""
        h = self.encode(now, prev, last_action, prev_action)
        x = torch.randn((h.shape[0], self.cfg.chunk * self.tower.cfg.action_dim), generator=generator)
        times = euler_schedule(flow_steps or self.cfg.flow_steps)
        for t0, t1 in zip(times[:-1], times[1:]):
            x = x + (t1 - t0) * self.velocity(h, x, t0.expand(x.shape[0]))
        return self.from_chunk(x, now).clamp(self.tower.a_mid - self.tower.a_half, self.tower.a_mid + self.tower.a_half)
