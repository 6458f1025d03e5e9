"""Fitting the Generator tower over entity tokens: its transitions from episodes, the dynamics fit and the
policy-mode fit, with one shuffled-epoch loop (`fit_shuffled`) over the project's `fit`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..model.entity_policy import EntityPolicy
from ..model.entity_tower import EntityTower


def entity_transitions(episodes: list[dict], names: list[str]) -> dict:
    """Episodes {"states": {name: (T, state_dims)}, "action": (T-1 or T, A), "rest_action": (A,)} (action t
    leads from step t to t+1; before the first step every entity rests and the previous action is the rest
    action) -> stacked tensors {"now", "prev", "next": [per entity (N, k)], "action", "prev_action": (N, A)}."""
    cols = {"now": [[] for _ in names], "prev": [[] for _ in names], "next": [[] for _ in names],
            "action": [], "prev_action": []}
    for ep in episodes:
        states = [np.asarray(ep["states"][n], np.float64) for n in names]
        T = len(states[0])
        if any(len(s) != T for s in states):
            raise UserError(f"episode entity states have lengths {[len(s) for s in states]}; they must be equal")
        n = T - 1
        if n < 1:
            continue
        action = np.asarray(ep["action"], np.float64)[:n]
        if len(action) < n:
            raise UserError(f"episode has {T} states and {len(ep['action'])} actions; expected one per transition")
        for i, s in enumerate(states):
            cols["now"][i].append(s[:n])
            cols["prev"][i].append(np.concatenate([s[:1], s[: n - 1]]))
            cols["next"][i].append(s[1:])
        cols["action"].append(action)
        cols["prev_action"].append(np.concatenate([np.asarray(ep["rest_action"], np.float64)[None], action[: n - 1]]))
    if not cols["action"]:
        raise UserError("no transitions: every episode has fewer than two steps")
    cat = lambda v: torch.from_numpy(np.concatenate(v)).float()  # noqa: E731
    return {"now": [cat(v) for v in cols["now"]], "prev": [cat(v) for v in cols["prev"]],
            "next": [cat(v) for v in cols["next"]], "action": cat(cols["action"]),
            "prev_action": cat(cols["prev_action"])}


def fit_entity_tower(tower: EntityTower, data: dict, epochs: int = 60, batch: int = 512, lr: float = 2e-3,
                     seed: int = 0, progress: bool = True, log=None) -> dict:
    """Train `tower` on `entity_transitions(...)` with the rectified-flow loss (one-cycle AdamW). The change
    scale (per entity, per dim: the spread of moving entities' changes) is set from the data first.
    Deterministic for a seed. Returns the last losses and data counts."""
    gen = torch.Generator().manual_seed(seed)  # every draw of the fit comes from here
    tower.set_change_scale(torch.ones_like(tower.change_scale))
    raw, moving = tower.changes(data["now"], data["next"])
    scale = torch.stack([raw[:, i][moving[:, i] > 0].std(0) if moving[:, i].sum() > 1 else torch.ones(raw.shape[-1])
                         for i in range(raw.shape[1])])
    tower.set_change_scale(torch.nan_to_num(scale, nan=1.0))
    n = len(data["action"])

    def batch_loss(idx):
        take = lambda xs: [x[idx] for x in xs]  # noqa: E731
        return tower.loss(take(data["now"]), take(data["prev"]), take(data["next"]), data["action"][idx],
                          data["prev_action"][idx], generator=gen)

    last = fit_shuffled(tower, n, batch_loss, epochs, batch, lr, gen, "entity_tower", progress, log)
    return {**{k: float(v) for k, v in last.items()}, "transitions": n,
            "moving_share": [float(m) for m in moving.mean(0)]}


def fit_shuffled(module: nn.Module, n: int, batch_loss, epochs: int, batch: int, lr: float,
                 generator: torch.Generator, stage: str, progress: bool = True, log=None) -> dict:
    """`epochs` passes over `n` samples in batches, reshuffled each pass by `generator`, one-cycle AdamW;
    `batch_loss(indices)` -> the loss (or a dict of them under "loss"). The module is left in eval mode.
    Returns the last step's losses."""
    from .fit import fit

    batch = max(1, min(batch, n))
    per_epoch = max(1, n // batch)
    opt = torch.optim.AdamW(module.parameters(), lr / 2, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, epochs * per_epoch))
    module.train()
    perm = None

    def loss_fn(step):
        nonlocal perm
        i = step % per_epoch
        if i == 0:
            perm = torch.randperm(n, generator=generator)
        return batch_loss(perm[i * batch : (i + 1) * batch])

    last = fit(loss_fn, opt, epochs * per_epoch, sched=sched, stage=stage, log=log, log_every=per_epoch,
               progress=progress)
    module.eval()
    return last



def policy_samples(episodes: list[dict], names: list[str], chunk: int) -> dict:
    """Episodes {"states": {name: (T, state_dims)}, "action": (T, A) (action t is taken at state t),
    "rest_action": (A,)} -> {"now", "prev": [per entity (N, k)], "last_action", "prev_action": (N, A),
    "chunk": (N, H, A)}: at every state, the H actions taken from it on (the last one repeated past the
    episode's end), and the two actions that led to it (the rest action before the first)."""
    cols = {"now": [[] for _ in names], "prev": [[] for _ in names], "last_action": [], "prev_action": [], "chunk": []}
    for ep in episodes:
        states = [np.asarray(ep["states"][n], np.float64) for n in names]
        action = np.asarray(ep["action"], np.float64)
        T = min(len(states[0]), len(action))
        if T < 1:
            continue
        rest = np.asarray(ep["rest_action"], np.float64)[None]
        before = np.concatenate([rest, rest, action[: T - 1]])  # before[t + 1]: the action that led to state t
        padded = np.concatenate([action[:T], np.repeat(action[T - 1 : T], chunk - 1, 0)])
        for i, s in enumerate(states):
            cols["now"][i].append(s[:T])
            cols["prev"][i].append(np.concatenate([s[:1], s[: T - 1]]))
        cols["last_action"].append(before[1 : T + 1])
        cols["prev_action"].append(before[:T])
        cols["chunk"].append(np.stack([padded[t : t + chunk] for t in range(T)]))
    if not cols["chunk"]:
        raise UserError("no policy samples: every episode is empty")
    cat = lambda v: torch.from_numpy(np.concatenate(v)).float()  # noqa: E731
    return {"now": [cat(v) for v in cols["now"]], "prev": [cat(v) for v in cols["prev"]],
            "last_action": cat(cols["last_action"]), "prev_action": cat(cols["prev_action"]),
            "chunk": cat(cols["chunk"])}


def fit_entity_policy(policy: EntityPolicy, data: dict, epochs: int = 100, batch: int = 256, lr: float = 1e-3,
                      seed: int = 0, progress: bool = True, log=None) -> dict:
    """Train `policy` on `policy_samples(...)` with the rectified-flow loss (one-cycle AdamW). The action
    scale (per dim, the spread of the chunks relative to the first entity) is set from the data first.
    Deterministic for a seed. Returns the last loss and the sample count."""
    gen = torch.Generator().manual_seed(seed)
    policy.set_action_scale(torch.ones_like(policy.action_scale))
    rel = policy.to_chunk(data["chunk"], data["now"]).reshape(len(data["chunk"]), policy.cfg.chunk, -1)
    policy.set_action_scale(rel.reshape(-1, rel.shape[-1]).std(0))
    n = len(data["chunk"])

    def batch_loss(idx):
        take = lambda xs: [x[idx] for x in xs]  # noqa: E731
        return policy.loss(take(data["now"]), take(data["prev"]), data["last_action"][idx], data["prev_action"][idx],
                           data["chunk"][idx], generator=gen)

    last = fit_shuffled(policy, n, batch_loss, epochs, batch, lr, gen, "entity_policy", progress, log)
    return {"loss": float(last["loss"]), "samples": n}

