"""Calibrate the learned simulator's success threshold on the frames it will actually judge.

A judge that regresses task progress gives a probability near the success threshold itself on a frame
at the success boundary, and the learned env's own (slightly blurred) predictions of a success frame
score a little lower than the real frame. The threshold that decides `terminated` is therefore
chosen on held-out real episodes: for every recorded transition the model predicts the next frame
from the real context and action (exactly as the env steps), the judge scores that prediction, and
the threshold that best separates real success (the real reward at or above its threshold) from failure is
kept (best F1; ties to the higher threshold). Held-out seeds must differ from evaluation seeds.
"""

from __future__ import annotations

import numpy as np
from ..errors import UserError


def best_threshold(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None) -> dict:
    """The threshold on `probs` with the best F1 for boolean `labels` (ties: the higher threshold)."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, bool)
    if labels.all() or not labels.any():
        raise UserError(f"calibration needs both successes and failures; got {labels.sum()} of {len(labels)} positive")
    grid = np.round(np.arange(0.30, 0.991, 0.01), 2) if grid is None else np.asarray(grid)
    rows = []
    for t in grid:
        pred = probs >= t
        tp, fp, fn = (pred & labels).sum(), (pred & ~labels).sum(), (~pred & labels).sum()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        rows.append((float(t), float(f1), float(tp / labels.sum()), float(fp / (~labels).sum())))
    best = max(rows, key=lambda r: (r[1], r[0]))
    return {"threshold": best[0], "f1": best[1], "tpr": best[2], "fpr": best[3], "table": rows}


def imagined_success_probs(backend, episodes: list[dict], batch: int = 256, seed: int = 0) -> np.ndarray:
    """Reward (the judge's probability) of the backend's one-step prediction for every transition of
    `episodes` (each: `frames` (T+1, H, W, 3) of the backend's first camera, `states` (T+1, S), `actions`
    (T, D), as `record_with_states` gives), started from the real context exactly as the env steps."""
    from ..backends import Context

    C, cam = backend.history, backend.cameras[0]
    frames, states, actions = [], [], []
    for ep in episodes:
        for t in range(len(ep["actions"])):
            idx = np.maximum(np.arange(t - C + 1, t + 1), 0)  # the first frame repeats before the start
            frames.append(ep["frames"][idx])
            states.append(ep["states"][idx])
            actions.append(ep["actions"][t])
    out = []
    for i in range(0, len(frames), batch):
        ctx = Context({cam: np.stack(frames[i : i + batch])}, np.stack(states[i : i + batch]).astype(np.float64))
        session = backend.reset(ctx, seed=seed + i)
        out.append(backend.step(session, np.stack(actions[i : i + batch])).reward)
    return np.concatenate(out)
