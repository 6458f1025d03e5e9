"""Agreement between policy rankings in the learned and the real simulator.

MMRV (mean maximum rank violation) exactly as SIMPLER defines it (Li et al. 2024,
`simpler_env/utils/metrics.py`): for policies i, j the pair is a violation when
(sim_i > sim_j) != (real_i > real_j), and it costs |real_i - real_j|; MMRV is the mean over i of the
largest violation involving i. 0 is a perfect ranking. Intervals come from `scipy.stats.bootstrap`,
resampling each policy's episodes in both simulators.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from ..errors import UserError


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
    """SIMPLER's mean_maximum_rank_violation(perf_sim=learned, perf_real=real)."""
    sim, real = np.asarray(learned, float), np.asarray(real, float)
    if sim.shape != real.shape or sim.ndim != 1:
        raise UserError(f"mmrv needs two equal-length 1-D success vectors, got {sim.shape} and {real.shape}")
    violation = (sim[:, None] > sim[None, :]) != (real[:, None] > real[None, :])
    return float(np.where(violation, np.abs(real[:, None] - real[None, :]), 0.0).max(axis=1).mean())


def mean_abs_error(learned, real) -> float:
    """Mean over policies of |learned success - real success|."""
    return float(np.mean(np.abs(np.asarray(learned, float) - np.asarray(real, float))))


METRICS = {"pearson": pearson, "spearman": spearman, "mmrv": mmrv, "mae": mean_abs_error}


def bootstrap_ci(learned_outcomes: list[np.ndarray], real_outcomes: list[np.ndarray], metric: str,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Metric on per-policy success rates, with a percentile bootstrap interval (`scipy.stats.bootstrap`)
    that resamples each policy's episodes, learned and real independently. Returns (value, low, high);
    the interval is NaN when no resample defines the metric (or a policy has a single episode)."""
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    fn = METRICS[metric]
    samples = [np.asarray(o, float) for o in (*learned_outcomes, *real_outcomes)]
    if any(len(o) == 0 for o in samples):
        raise UserError("bootstrap_ci needs at least one episode per policy in both simulators")
    k = len(learned_outcomes)
    value = fn([o.mean() for o in samples[:k]], [o.mean() for o in samples[k:]])
    if min(len(o) for o in samples) < 2:  # one episode per policy: nothing to resample
        return value, float("nan"), float("nan")

    def statistic(*groups, axis=-1):
        means = [g.mean(axis=axis) for g in groups]
        lr, rr = np.stack(means[:k], -1), np.stack(means[k:], -1)
        with warnings.catch_warnings():  # resamples with tied policies: NaN, dropped below
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            values = [fn(a, b) for a, b in zip(lr.reshape(-1, k), rr.reshape(-1, k))]
        return np.array(values).reshape(lr.shape[:-1])

    with warnings.catch_warnings():  # scipy's interval is NaN when some resample is; ours is computed below
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(samples, statistic, n_resamples=n_boot, confidence_level=level, method="percentile",
                              vectorized=True, rng=np.random.default_rng(seed))
    # percentile interval over the resamples where the metric is defined (a correlation is undefined where a
    # resample ties every policy); scipy's own interval turns NaN as soon as one resample is
    draws = res.bootstrap_distribution[np.isfinite(res.bootstrap_distribution)]
    if not len(draws):
        return value, float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return value, float(lo), float(hi)


def auroc(scores, labels) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (the Mann-Whitney U statistic over
    n_pos x n_neg, ties counted half); NaN when one class is empty."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic / (len(pos) * len(neg)))


def uncertainty_report(learned_success, real_success, disagreement, threshold: float | None = None,
                       disagreement_max=None) -> dict:
    """Does the learned simulator's disagreement point at the episodes it gets wrong? Per episode (all
    policies pooled): AUROC of the disagreement (each episode's mean) against "learned outcome != real
    outcome", and of each episode's max where given; with a threshold, how many episodes the mean flags and
    how often flagged and unflagged episodes mismatch."""
    ls, rs = np.concatenate(learned_success).astype(bool), np.concatenate(real_success).astype(bool)
    d = np.concatenate(disagreement).astype(float)
    mismatch = ls != rs
    out = {"episodes": int(len(d)), "mismatches": int(mismatch.sum()), "auroc": auroc(d, mismatch)}
    if disagreement_max is not None:
        out["auroc_of_episode_max"] = auroc(np.concatenate(disagreement_max).astype(float), mismatch)
    if threshold is not None:
        flagged = d > threshold
        out |= {"threshold": float(threshold), "flagged": int(flagged.sum()),
                "mismatch_rate_flagged": float(mismatch[flagged].mean()) if flagged.any() else float("nan"),
                "mismatch_rate_unflagged": float(mismatch[~flagged].mean()) if (~flagged).any() else float("nan")}
    return out
