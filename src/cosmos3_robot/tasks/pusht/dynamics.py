"""Contact dynamics of a pushed rigid body, learned in the body's own frame: the task-specific baseline
(`train-dynamics --dynamics mlp`, the `pusht_fast` and `pusht_small` checkpoints). The shipped default
steps the same state with the Generator tower over entity tokens instead (`model/entity_tower.py`).

The world model's transformer predicts the perceived state (PushT: the T's pose) from two context
states, and measured on held-out episodes it moves a resting T by 4.5 units per step and does no better
than "no change" when the T is pushed (a benchmark since removed; docs/research-log.md). Pushing is invariant to
where the body lies and how it is turned, so this head sees the pusher's recent positions and its
action expressed in the body's frame (plus the body's place in the workspace, for the walls) and
predicts the body's change in that frame, times a learned contact probability: off contact the body
stays exactly where it is. The structured backend then draws the next frame from this state. Trained
by `fit_pose_dynamics` on poses perceived from the dataset's own frames (`vision.py`), never on
simulator internals.

Units: positions in workspace units, angles in radians; `scale` sets the feature scale.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...train import fit
from ...errors import UserError


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (..., 2, 2)


def to_body(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """World points (..., 2) -> the frame of the body at `pose` (..., 3) = (x, y, angle)."""
    return torch.einsum("...ji,...j->...i", _rotation(pose[..., 2]), points - pose[..., :2])


def from_body(vectors: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Body-frame vectors (..., 2) -> world vectors (rotation only)."""
    return torch.einsum("...ij,...j->...i", _rotation(pose[..., 2]), vectors)


class PoseDynamics(nn.Module):
    """(pusher now, pusher one step ago, action now, previous action, body pose) -> next pusher position,
    next body pose and the contact logit. All inputs (b, 2) / pose (b, 3) in workspace units."""

    N_IN, N_OUT = 12, 5

    def __init__(self, width: int = 256, layers: int = 3, scale: float = 100.0, workspace: float = 512.0):
        super().__init__()
        self.scale, self.workspace = float(scale), float(workspace)
        blocks, d = [], self.N_IN
        for _ in range(layers):
            blocks += [nn.Linear(d, width), nn.SiLU()]
            d = width
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, self.N_OUT)
        self.contact = nn.Linear(width, 1)

    def features(self, agent, prev_agent, action, prev_action, pose) -> torch.Tensor:
        local = [to_body(p, pose) / self.scale for p in (agent, prev_agent, action, prev_action)]
        place = pose[..., :2] / (self.workspace / 2) - 1
        return torch.cat([*local, place, torch.cos(pose[..., 2:]), torch.sin(pose[..., 2:])], dim=-1)

    def forward(self, agent, prev_agent, action, prev_action, pose) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (b, 5) body-frame changes [pusher dx, dy (/10), body dx, dy (/10), dangle (x10)] already gated
        by the contact probability, and the contact logit (b,)."""
        h = self.body(self.features(agent, prev_agent, action, prev_action, pose))
        out, logit = self.out(h), self.contact(h)[..., 0]
        return torch.cat([out[..., :2], out[..., 2:] * torch.sigmoid(logit)[..., None]], dim=-1), logit

    @staticmethod
    def targets(agent, next_agent, pose, next_pose) -> torch.Tensor:
        """The body-frame changes `forward` predicts, from two consecutive states."""
        d_angle = torch.remainder(next_pose[..., 2] - pose[..., 2] + torch.pi, 2 * torch.pi) - torch.pi
        return torch.cat([to_body(next_agent, pose) - to_body(agent, pose),
                          to_body(next_pose[..., :2], pose), 10 * d_angle[..., None]], dim=-1) * torch.tensor(
            [0.1, 0.1, 0.1, 0.1, 1.0])

    @torch.no_grad()
    def step(self, agent, prev_agent, action, prev_action, pose) -> tuple[torch.Tensor, torch.Tensor]:
        """One control step: next pusher position (b, 2) and body pose (b, 3). Off contact (logit < 0) the
        body does not move at all, so a resting body never drifts."""
        out, logit = self(agent, prev_agent, action, prev_action, pose)
        moving = (logit >= 0).to(out.dtype)[..., None]
        next_agent = agent + from_body(10 * out[..., :2], pose)
        shift = from_body(10 * out[..., 2:4], pose) * moving
        next_pose = torch.cat([pose[..., :2] + shift, pose[..., 2:] + out[..., 4:] / 10 * moving], dim=-1)
        return next_agent, next_pose


def transitions(episodes: list[dict]) -> dict[str, torch.Tensor]:
    """Episodes with `agent` (T, 2), `pose` (T, 3) and `action` (T-1 or T, 2) (action t leads from step t to
    t+1) -> stacked training tensors; before the first step the pusher rests where it starts."""
    cols: dict[str, list] = {k: [] for k in ("agent", "prev_agent", "action", "prev_action", "pose", "next_agent",
                                             "next_pose")}
    for ep in episodes:
        agent, pose = np.asarray(ep["agent"], np.float64), np.asarray(ep["pose"], np.float64)
        n = len(agent) - 1
        if n < 1:
            continue
        action = np.asarray(ep["action"], np.float64)[:n]
        if len(action) < n or len(pose) != len(agent):
            raise UserError(f"episode has {len(agent)} states, {len(pose)} poses and {len(ep['action'])} actions; "
                             "expected as many poses as states and one action per transition")
        cols["agent"].append(agent[:n])
        cols["prev_agent"].append(np.concatenate([agent[:1], agent[: n - 1]]))
        cols["action"].append(action)
        cols["prev_action"].append(np.concatenate([agent[:1], action[: n - 1]]))
        cols["pose"].append(pose[:n])
        cols["next_agent"].append(agent[1:])
        cols["next_pose"].append(pose[1:])
    if not cols["agent"]:
        raise UserError("no transitions: every episode has fewer than two steps")
    return {k: torch.from_numpy(np.concatenate(v)).float() for k, v in cols.items()}


def fit_pose_dynamics(head: PoseDynamics, data: dict[str, torch.Tensor], epochs: int = 30, batch: int = 512,
                      lr: float = 2e-3, seed: int = 0, progress: bool = True, log=None) -> dict:
    """Train `head` on `transitions(...)` (one-cycle AdamW, MSE on the body-frame changes with the body's
    weighted 3x, plus a contact classifier). Deterministic for a seed. Returns final metrics."""
    gen = torch.Generator().manual_seed(seed)
    n = len(data["agent"])
    if n < batch:
        batch = max(1, n)
    target = PoseDynamics.targets(data["agent"], data["next_agent"], data["pose"], data["next_pose"])
    moving = (target[:, 2:].abs().sum(-1) > 1e-4).float()
    weights = torch.tensor([1.0, 1.0, 3.0, 3.0, 3.0])
    per_epoch = n // batch
    opt = torch.optim.AdamW(head.parameters(), lr / 2, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, epochs * per_epoch))
    inputs = [data[k] for k in ("agent", "prev_agent", "action", "prev_action", "pose")]
    head.train()
    perm = None

    def loss_fn(step):
        nonlocal perm
        i = step % per_epoch
        if i == 0:  # a fresh shuffle each epoch
            perm = torch.randperm(n, generator=gen)
        idx = perm[i * batch : (i + 1) * batch]
        out, logit = head(*[x[idx] for x in inputs])
        return ((out - target[idx]) ** 2 * weights).mean() + 0.1 * nn.functional.binary_cross_entropy_with_logits(
            logit, moving[idx])

    last = fit(loss_fn, opt, epochs * per_epoch, sched=sched, stage="pose_dynamics", log=log,
               log_every=max(1, per_epoch), progress=progress)
    head.eval()
    return {"loss": last.get("loss", float("nan")), "transitions": n, "moving_share": float(moving.mean())}


def reinit(module: nn.Module, seed: int) -> None:
    """Re-draw the Linear layers of `module` from PyTorch's default init under `seed` (so a head's init
    depends on the seed alone, not on what was built before it)."""
    torch.manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.reset_parameters()
