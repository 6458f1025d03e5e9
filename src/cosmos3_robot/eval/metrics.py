"""Agreement between policy rankings in the learned and the real simulator.

MMRV (mean maximum rank violation, SIMPLER, Li et al. 2024): for policies i, j a rank violation
costs |real_i - real_j| when the learned simulator orders them differently from the real one;
MMRV = mean over i of the largest violation involving i. 0 is a perfect ranking. A tie in the
learned simulator where the real one differs counts as a violation (it fails to separate them).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(stats.pearsonr(x, y).statistic)


def spearman(x, y) -> float:
    """Rank correlation with average ranks for ties (scipy)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def mmrv(learned, real) -> float:
    learned, real = np.asarray(learned, float), np.asarray(real, float)
    n = len(real)
    worst = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i == j or real[i] == real[j]:
                continue  # real tie: any order is right
            if (learned[i] < learned[j]) != (real[i] < real[j]) or learned[i] == learned[j]:
                worst[i] = max(worst[i], abs(real[i] - real[j]))
    return float(worst.mean())


METRICS = {"pearson": pearson, "spearman": spearman, "mmrv": mmrv}


def bootstrap_ci(learned_outcomes: list[np.ndarray], real_outcomes: list[np.ndarray], metric: str,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Metric on per-policy success rates, with a percentile bootstrap interval that resamples each
    policy's episodes (learned and real independently). Returns (value, low, high)."""
    fn = METRICS[metric]
    value = fn([o.mean() for o in learned_outcomes], [o.mean() for o in real_outcomes])
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        lr = [rng.choice(o, size=len(o)).mean() for o in learned_outcomes]
        rr = [rng.choice(o, size=len(o)).mean() for o in real_outcomes]
        draws.append(fn(lr, rr))
    draws = np.asarray(draws)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return value, float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return value, float(lo), float(hi)
