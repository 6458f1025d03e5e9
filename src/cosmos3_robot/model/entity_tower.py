"""State dynamics as the Generator tower over entity tokens, sampled by rectified flow.

A task declares its entities (the pusher or end effector and each object) and the frame each one uses:
`point2` / `point3` (a position; its frame is translated, not turned) or `se2` / `se3` (a pose). One
token per entity carries what that entity sees *in its own frame*: where it was one step ago, where each
other entity is now and was one step ago, where the action sends the robot (when the action is a
position target), and, for the walls, its place in the workspace. Pairwise geometry in the receiver's
frame is how learned physics simulators make a push look the same wherever and however the object lies
(Battaglia et al. 2016, "Interaction Networks"; Sanchez-Gonzalez et al. 2020, "Learning to Simulate
Complex Physics with Graph Networks"). One more token carries the action chunk (normalized).

The tokens run through layers of the MoT's Generator tower (`mot.TowerLayer`: pre-norm joint attention
over all tokens, SwiGLU MLP). Each entity's output conditions a small flow head (a per-token diffusion
MLP, as MAR does: Li et al. 2024, "Autoregressive Image Generation without Vector Quantization") that
samples the entity's change in its own frame with the project's rectified-flow objective (`flow.py`), so a
step can be sampled, not only averaged. K samples per step give the disagreement the learned env reports
as its uncertainty. A per-entity gate (a contact logit) keeps an entity that the tower says is at rest
exactly where it is, so a resting object never drifts.

State layout per kind: point2 (x, y), se2 (x, y, angle), point3 (x, y, z), se3 (x, y, z, rotation vector).
Units are the task's; `length_scale` sets the feature scale."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .flow import add_noise, euler_schedule, sample_time, velocity_target
from .mot import TowerLayer
from ..errors import UserError

from .entity_geometry import KINDS, apply_change, change_dims, own_change, rotation_features, split_pose, state_dims


# ---------------------------------------------------------------------------------------------- config


@dataclass
class EntityTowerConfig:
    """entities: [{"name", "kind"}] in state order; action_kind: the action's geometric kind when its first
    dims are a position target of the first entity (e.g. "point2"; more dims may follow, such as a gripper's
    command), else None; action_low / action_high: the action's
    bounds (per dim, for the action token's normalization); workspace_low / _high: per axis (place features).
    """

    entities: list[dict]
    action_dim: int
    action_low: list[float]
    action_high: list[float]
    workspace_low: list[float]
    workspace_high: list[float]
    action_kind: str | None = None
    length_scale: float = 1.0
    dim: int = 96
    layers: int = 3
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_dim: int = 192
    head_width: int = 192
    flow_steps: int = 4
    samples: int = 4
    step_with: str = "mean"  # "mean" of the K samples, or "sample" (the first one)
    place_features: bool = True
    norm_eps: float = 1e-6
    change_scale: list[list[float]] = field(default_factory=list)  # per entity, per change dim (set by fit)

    def __post_init__(self):
        if not self.entities:
            raise UserError("EntityTowerConfig.entities is empty; declare at least one entity {'name', 'kind'}")
        for e in self.entities:
            if e.get("kind") not in KINDS:
                raise UserError(f"entity {e.get('name')!r} has kind {e.get('kind')!r}; expected one of {sorted(KINDS)}")
        if self.action_kind is not None and self.action_kind not in KINDS:
            raise UserError(f"action_kind={self.action_kind!r}; expected None or one of {sorted(KINDS)}")
        if self.step_with not in ("mean", "sample"):
            raise UserError(f"step_with={self.step_with!r}; expected 'mean' or 'sample'")
        if self.samples < 1 or self.flow_steps < 1:
            raise UserError(f"samples={self.samples} and flow_steps={self.flow_steps} must be >= 1")
        if self.dim % self.n_heads:
            raise UserError(f"dim={self.dim} must be a multiple of n_heads={self.n_heads}")
        if not self.change_scale:
            self.change_scale = [[1.0] * change_dims(e["kind"]) for e in self.entities]

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EntityTowerConfig:
        return cls(**d)


# ---------------------------------------------------------------------------------------------- the tower


class EntityTower(nn.Module):
    """See the module docstring. States are lists in entity order of (B, state_dims) tensors in the task's
    units."""

    def __init__(self, cfg: EntityTowerConfig):
        super().__init__()
        self.cfg = cfg
        self.kinds = [e["kind"] for e in cfg.entities]
        self.max_change = max(change_dims(k) for k in self.kinds)
        self.token_in = nn.ModuleList([nn.Linear(self._n_features(i), cfg.dim) for i in range(len(self.kinds))])
        self.action_in = nn.Linear(2 * cfg.action_dim, cfg.dim)
        self.layers = nn.ModuleList([TowerLayer(cfg) for _ in range(cfg.layers)])
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.gate = nn.Linear(cfg.dim, 1)
        self.head = nn.Sequential(nn.Linear(cfg.dim + self.max_change + 16, cfg.head_width), nn.SiLU(),
                                  nn.Linear(cfg.head_width, cfg.head_width), nn.SiLU(),
                                  nn.Linear(cfg.head_width, self.max_change))
        scale = torch.ones(len(self.kinds), self.max_change)
        mask = torch.zeros(len(self.kinds), self.max_change)
        for i, k in enumerate(self.kinds):
            scale[i, : change_dims(k)] = torch.tensor(cfg.change_scale[i], dtype=torch.float32)
            mask[i, : change_dims(k)] = 1
        self.register_buffer("freqs", 1000.0 * torch.exp(torch.arange(8.0) * (-math.log(1000.0) / 8)), persistent=False)
        self.register_buffer("change_scale", scale, persistent=False)
        self.register_buffer("change_mask", mask, persistent=False)
        a_lo, a_hi = torch.tensor(cfg.action_low, dtype=torch.float32), torch.tensor(cfg.action_high, dtype=torch.float32)
        self.register_buffer("a_mid", (a_lo + a_hi) / 2, persistent=False)
        self.register_buffer("a_half", ((a_hi - a_lo) / 2).clamp_min(1e-6), persistent=False)
        w_lo = torch.tensor(cfg.workspace_low, dtype=torch.float32)
        w_hi = torch.tensor(cfg.workspace_high, dtype=torch.float32)
        self.register_buffer("w_mid", (w_lo + w_hi) / 2, persistent=False)
        self.register_buffer("w_half", ((w_hi - w_lo) / 2).clamp_min(1e-6), persistent=False)

    def set_change_scale(self, scale: torch.Tensor) -> None:
        """Per entity, per change dim (E, max_change): the spread the flow head works in (from the data)."""
        self.change_scale.copy_(torch.where(self.change_mask > 0, scale.clamp_min(1e-6), torch.ones_like(scale)))
        self.cfg.change_scale = [self.change_scale[i, : change_dims(k)].tolist() for i, k in enumerate(self.kinds)]

    def _rel_width(self, kind: str, d: int) -> int:
        return d + (d * (d - 1) if KINDS[kind][1] else 0)  # position + rotation code (2 in 2-D, 6 in 3-D)

    def _n_features(self, i: int) -> int:
        d = KINDS[self.kinds[i]][0]
        n = self._rel_width(self.kinds[i], d)  # itself one step ago
        if self.cfg.place_features:
            n += self._rel_width(self.kinds[i], d)  # its place (and rotation) in the workspace
        n += sum(2 * self._rel_width(k, d) for j, k in enumerate(self.kinds) if j != i)
        if self.cfg.action_kind is not None:
            n += 2 * self._rel_width(self.cfg.action_kind, d)
        return n

    def tokens(self, now: list[torch.Tensor], prev: list[torch.Tensor], action: torch.Tensor,
               prev_action: torch.Tensor) -> torch.Tensor:
        """Entity states now / one step ago (lists in entity order, (B, state_dims)) and actions (B, A) ->
        token embeddings (B, E + 1, dim): one per entity, in its own frame, then the action token. An
        entity's features: the positions of itself one step ago, of every other entity now and one step ago
        and of the action targets, in its frame (per `length_scale`); the rotations of the turning ones
        relative to it; then its place in the workspace (and its own rotation)."""
        s = self.cfg.length_scale
        posed_now = [split_pose(x, k) for x, k in zip(now, self.kinds)]
        posed_prev = [split_pose(x, k) for x, k in zip(prev, self.kinds)]
        out = []
        for i, kind in enumerate(self.kinds):
            p, R = posed_now[i]
            sources = [posed_prev[i]] + [x for j in range(len(self.kinds)) if j != i
                                         for x in (posed_now[j], posed_prev[j])]
            if self.cfg.action_kind is not None:  # the action's first dims are a position target
                k = KINDS[self.cfg.action_kind][0]
                sources += [(action[..., :k], None), (prev_action[..., :k], None)]
            points = torch.stack([q for q, _ in sources], -2) - p[..., None, :]  # (B, M, d)
            feats = [(points if R is None else points @ R).flatten(-2) / s]  # rows: R^T (q - p)
            turns = [Rq for _, Rq in sources if Rq is not None]
            if turns:
                Rs = torch.stack(turns, -3)  # (B, M', d, d)
                feats.append(rotation_features(Rs if R is None else R.transpose(-1, -2)[..., None, :, :] @ Rs)
                             .flatten(-2))
            if self.cfg.place_features:
                feats.append((p - self.w_mid) / self.w_half)
                if R is not None:
                    feats.append(rotation_features(R))
            out.append(self.token_in[i](torch.cat(feats, -1)))
        a = torch.cat([(action - self.a_mid) / self.a_half, (prev_action - self.a_mid) / self.a_half], -1)
        out.append(self.action_in(a))
        return torch.stack(out, 1)

    def encode(self, now, prev, action, prev_action) -> torch.Tensor:
        x = self.tokens(now, prev, action, prev_action)
        for layer in self.layers:
            q, k, v = layer.qkv(x)
            attn = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            x = x + layer.wo(attn.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))
            x = x + layer.mlp(x)
        return self.norm(x[:, : len(self.kinds)])  # (B, E, dim): the entity tokens

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Flow times (...) -> (..., 16) sinusoidal features."""
        angles = t[..., None] * self.freqs
        return torch.cat([torch.sin(angles), torch.cos(angles)], -1)

    def velocity(self, h: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Flow head: entity features h (..., E, dim), noisy normalized changes x (..., E, C), times t (..., E)."""
        return self.head(torch.cat([h, x, self.time_embedding(t)], -1))

    def loss(self, now, prev, nxt, action, prev_action, generator=None) -> dict:
        """Rectified-flow loss on each moving entity's normalized change, plus the gate's cross-entropy."""
        h = self.encode(now, prev, action, prev_action)
        change, moving = self.changes(now, nxt)
        B, E = change.shape[:2]
        noise = torch.randn(change.shape, generator=generator)
        t = sample_time(B * E, generator=generator).reshape(B, E)
        xt = add_noise(change.reshape(B * E, -1), noise.reshape(B * E, -1), t.reshape(-1)).reshape(change.shape)
        v = self.velocity(h, xt, t)
        err = ((v - velocity_target(change, noise)) ** 2 * self.change_mask).sum(-1) / self.change_mask.sum(-1)
        flow = (err * moving).sum() / moving.sum().clamp_min(1.0)
        gate = F.binary_cross_entropy_with_logits(self.gate(h)[..., 0], moving)
        return {"loss": flow + 0.1 * gate, "flow": flow, "gate": gate}

    def changes(self, now, nxt) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized own-frame changes (B, E, C) (zero-padded) and whether each entity moved (B, E)."""
        rows = []
        for i, kind in enumerate(self.kinds):
            c = own_change(now[i], nxt[i], kind)
            rows.append(F.pad(c, (0, self.max_change - c.shape[-1])))
        raw = torch.stack(rows, 1)
        moving = (raw.abs().sum(-1) > 1e-4 * self.cfg.length_scale).float()
        return raw / self.change_scale, moving

    @torch.no_grad()
    def sample(self, now, prev, action, prev_action, noise: torch.Tensor | None = None, generator=None,
               flow_steps: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """-> next states (list in entity order) and each session's disagreement (B,): the spread of the K
        sampled changes, in units of the data's own spread, averaged over moving entities' dims. The starting
        noise is `noise` (B, K, E, max_change) or drawn from `generator` with K = cfg.samples."""
        S = flow_steps or self.cfg.flow_steps
        h = self.encode(now, prev, action, prev_action)
        B, E = h.shape[:2]
        if noise is None:
            noise = torch.randn((B, self.cfg.samples, E, self.max_change), generator=generator)
        K = noise.shape[1]
        moving = (self.gate(h)[..., 0] >= 0).to(h.dtype)  # (B, E)
        x = noise.to(h.dtype)
        # `velocity` with its first layer split: the entity and time parts are computed once, not per step
        first, rest = self.head[0], self.head[1:]
        d, c = h.shape[-1], self.max_change
        w_h, w_x, w_t = first.weight[:, :d], first.weight[:, d : d + c], first.weight[:, d + c :]
        base = (h @ w_h.T + first.bias)[:, None]  # (B, 1, E, width)
        times = euler_schedule(S)
        for t0, t1 in zip(times[:-1], times[1:]):
            x = x + (t1 - t0) * rest(base + x @ w_x.T + self.time_embedding(t0) @ w_t.T)
        x = x * self.change_mask
        spread = x.std(1, unbiased=False) if K > 1 else torch.zeros_like(x[:, 0])
        disagreement = (spread.sum(-1) / self.change_mask.sum(-1) * moving).sum(-1) / moving.sum(-1).clamp_min(1)
        chosen = x.mean(1) if self.cfg.step_with == "mean" else x[:, 0]
        change = chosen * self.change_scale * moving[..., None]
        nxt = [apply_change(now[i], change[:, i, : change_dims(k)], k) for i, k in enumerate(self.kinds)]
        return nxt, disagreement


class _FlatSample(nn.Module):
    """`sample` with flat tensor inputs and outputs, as an exporter needs: now (E), prev (E), action,
    prev_action, noise -> next states (E), then the other outputs of `sample`."""

    def __init__(self, dynamics: EntityTower):
        super().__init__()
        self.dynamics, self.n = dynamics, len(dynamics.cfg.entities)

    def forward(self, *x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        E = self.n
        out = self.dynamics.sample(list(x[:E]), list(x[E : 2 * E]), x[2 * E], x[2 * E + 1], noise=x[2 * E + 2])
        return (*out[0], *out[1:])


def sampler(dynamics: EntityTower, runtime: str = "torch", search=()):
    """-> f(now, prev, action, prev_action, noise) with `dynamics.sample`'s results, run by `runtime`:
    "torch" (eager) or "onnxruntime" (the same graph exported once; see `model.runtime`). The noise must be
    given (B, K, E, max_change)."""
    from .runtime import OnnxFunction, check_runtime

    if check_runtime(runtime) == "torch":
        return lambda now, prev, action, prev_action, noise: dynamics.sample(now, prev, action, prev_action,
                                                                             noise=noise)
    cfg, E = dynamics.cfg, len(dynamics.cfg.entities)
    states = [torch.rand(2, state_dims(e["kind"])) for e in cfg.entities]  # shapes only: the graph has no branches
    action = torch.rand(2, cfg.action_dim)
    noise = torch.randn(2, cfg.samples, E, dynamics.max_change)
    fn = OnnxFunction(_FlatSample(dynamics).eval(), (*states, *[s + 1 for s in states], action, action + 1, noise),
                      "entity_tower", search)

    def run(now, prev, action, prev_action, noise):
        out = fn(*now, *prev, action, prev_action, noise)
        return (list(out[:E]), *out[E:])

    return run
