"""Calibrate the learned simulator's success threshold on the frames it will actually judge.

The judge regresses goal coverage, so on a frame at the success boundary its probability sits near
the coverage threshold itself, and the learned env's own (slightly blurred) predictions of a success
frame score a little lower than the real frame. The threshold that decides `terminated` is therefore
chosen on held-out real episodes: for every recorded transition the model predicts the next frame
from the real context and action (exactly as the env steps), the judge scores that prediction, and
the threshold that best separates real success (coverage >= the env's threshold) from failure is
kept (best F1; ties to the higher threshold). Held-out seeds must differ from evaluation seeds.
"""

from __future__ import annotations

import numpy as np
import torch


def best_threshold(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None) -> dict:
    """The threshold on `probs` with the best F1 for boolean `labels` (ties: the higher threshold)."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, bool)
    if labels.all() or not labels.any():
        raise ValueError(f"calibration needs both successes and failures; got {labels.sum()} of {len(labels)} positive")
    grid = np.round(np.arange(0.30, 0.991, 0.01), 2) if grid is None else np.asarray(grid)
    rows = []
    for t in grid:
        pred = probs >= t
        tp, fp, fn = (pred & labels).sum(), (pred & ~labels).sum(), (~pred & labels).sum()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        rows.append((float(t), float(f1), float(tp / labels.sum()), float(fp / (~labels).sum())))
    best = max(rows, key=lambda r: (r[1], r[0]))
    return {"threshold": best[0], "f1": best[1], "tpr": best[2], "fpr": best[3], "table": rows}


@torch.no_grad()
def imagined_success_probs(dynamics, episodes: list[dict], batch: int = 256, seed: int = 0) -> np.ndarray:
    """Judge probability of the model's one-step prediction for every transition of `episodes`
    (each: `frames` (T+1, H, W, 3), `states` (T+1, S), `actions` (T, D), as `record_with_states` gives)."""
    C = dynamics.context
    ctx, ctx_state, actions = [], [], []
    for ep in episodes:
        lat = dynamics.encode(ep["frames"])
        st = dynamics.norm_state(ep["states"], ep["frames"])
        for t in range(len(ep["actions"])):
            idx = np.maximum(np.arange(t - C + 1, t + 1), 0)  # the first frame repeats before the start
            ctx.append(lat[idx])
            ctx_state.append(st[idx])
            actions.append(ep["actions"][t])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(ctx), batch):
        _, _, prob, _, _ = dynamics.step(torch.stack(ctx[i : i + batch]), torch.stack(ctx_state[i : i + batch]),
                                         np.stack(actions[i : i + batch]), gen)
        out.append(prob)
    return np.concatenate(out)
