"""How far to trust a learned simulator's verdict on a policy.

- **Real success with an interval, from a few real trials.** `estimate_real_success` combines K paired real
  episodes with the learned simulator's predictions on every initial state by prediction-powered inference:
  PPI++ for a mean (Angelopoulos, Duchi, Zrnic, "PPI++: Efficient Prediction-Powered Inference",
  arXiv 2311.01453; Angelopoulos et al., "Prediction-powered inference", Science 382, 2023), the estimator
  SureSim (arXiv 2510.04354) uses for simulated robot trials. The K paired states are the labelled set (real
  outcome Y, prediction f), the other initial states the unlabelled one (f only):

      value = lam * mean(f_unlabelled) + mean(Y - lam * f_labelled)
      se^2  = lam^2 var(f_unlabelled) / N + var(Y - lam * f_labelled) / K
      lam   = cov(Y, f) / ((1 + K / N) var(f)), clipped to [0, 1] (lam = 0 is the real-only mean)

  as `ppi_py.ppi_mean_ci` computes it (variances with ddof 0, lam from the labelled covariance and the pooled
  variance of f, the normal quantile). One change for small K: the labelled residuals' variance counts two pseudo
  pairs (Y = 1, f = mean f) and two (Y = 0, f = mean f), as Agresti and Coull's interval adds z^2 / 2 = 2 pseudo
  successes and failures; K alike residuals (every real trial a success, say) otherwise give a zero-width
  interval. Chosen on held-out seeds and policies (docs/trust.md) over Student's t and 0 or 1 pseudo pairs.
  The real-only interval beside it is Wilson's score interval of the K real outcomes.

- **A success probability per initial state**: the share of N learned rollouts of that state, on independent
  noise streams, that succeed (`run_learned(samples=N)`). `outcome_trust` scores it against the real outcomes:
  Brier score, and the AUROC of its uncertainty p (1 - p) against learned/real mismatch.
"""

from __future__ import annotations

import numpy as np

from .metrics import auroc
from ..errors import UserError

# Pseudo pairs per outcome added to the labelled residuals' variance (ppi_mean); chosen on the choosing set's
# seeds and policies only (docs/trust.md).
PSEUDO_PAIRS = 2
QUANTILE = "normal"  # the interval's quantile: "normal" (ppi_py's) or "t" (Student's, K - 1 degrees of freedom)


def wilson_interval(successes: float, trials: int, level: float = 0.95) -> list[float]:
    """Wilson's score interval of a success rate (scipy's `binomtest(...).proportion_ci(method="wilson")`)."""
    from scipy.stats import binomtest

    ci = binomtest(int(round(successes)), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    return [float(ci.low), float(ci.high)]


def real_trials_for_width(p: float, width: float, level: float = 0.95) -> float:
    """How many real trials the real-only (Wilson) interval needs to be `width` wide at success rate `p` (inf for
    a zero width)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    p = float(np.clip(p, 0.0, 1.0))

    def wilson_width(n: float) -> float:
        return 2 * z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))

    if width >= wilson_width(1.0):
        return 1.0
    if width <= wilson_width(1e9):
        return float("inf")
    return float(brentq(lambda n: wilson_width(n) - width, 1.0, 1e9))


def ppi_mean(y: np.ndarray, f_labelled: np.ndarray, f_unlabelled: np.ndarray, level: float = 0.95,
             lam: float | None = None, pseudo: int = PSEUDO_PAIRS, quantile: str = QUANTILE) -> dict:
    """PPI++ estimate of E[Y] (module docstring): -> {"value", "ci95", "se", "lambda"}. `pseudo` > 0 adds that
    many pseudo pairs (Y = 1, f = mean f) and as many (Y = 0, f = mean f) to the labelled residuals' variance
    only, as Agresti and Coull's interval adds pseudo successes and failures: K identical residuals otherwise
    give a zero-width interval (module docstring)."""
    from scipy.stats import norm, t

    y, fl, fu = (np.asarray(a, float).ravel() for a in (y, f_labelled, f_unlabelled))
    k, n = len(y), len(fu)
    if k < 2 or len(fl) != k:
        raise UserError(f"prediction-powered inference needs at least 2 paired real episodes with predictions "
                        f"(got {k} real, {len(fl)} predictions); raise --real-budget")
    if n == 0:  # every state was run in the real simulator: the real mean alone
        lam = 0.0
    elif lam is None:
        var_f = np.concatenate([fl, fu]).var(ddof=1)
        cov = np.mean((y - y.mean()) * (fl - fl.mean()))
        lam = 0.0 if var_f <= 0 else float(np.clip(cov / ((1 + k / n) * var_f), 0.0, 1.0))
    value = (lam * fu.mean() if n else 0.0) + np.mean(y - lam * fl)
    resid = y - lam * fl
    if pseudo:
        resid = np.concatenate([resid, np.repeat([1.0 - lam * fl.mean(), -lam * fl.mean()], pseudo)])
    se = np.sqrt((lam**2 * fu.var() / n if n else 0.0) + resid.var() / k)
    half = (t.ppf(0.5 + level / 2, k - 1) if quantile == "t" else norm.ppf(0.5 + level / 2)) * se
    return {"value": float(value), "ci95": [float(value - half), float(value + half)], "se": float(se),
            "lambda": float(lam)}


def estimate_real_success(predicted: np.ndarray, real: np.ndarray, level: float = 0.95,
                          pseudo: int = PSEUDO_PAIRS, quantile: str = QUANTILE) -> dict:
    """Real success from `real` (K outcomes of the first K initial states) and `predicted` (the learned
    simulator's success probability, or its 0/1 outcome, on all initial states, the first K paired with the
    real ones). -> {"value", "ci95" (clipped to [0, 1]), "real_episodes", "lambda", "real_only":
    {"value", "ci95"}, "real_trials_same_width" (real-only trials for an interval as narrow; None when it has
    zero width), "real_trials_saved"}."""
    predicted, real = np.asarray(predicted, float), np.asarray(real, float)
    k = len(real)
    if k > len(predicted):
        raise UserError(f"{k} real episodes but only {len(predicted)} learned ones; the real ones pair with the "
                        "first learned initial states")
    est = ppi_mean(real, predicted[:k], predicted[k:], level, pseudo=pseudo, quantile=quantile)
    lo, hi = max(0.0, est["ci95"][0]), min(1.0, est["ci95"][1])
    same = real_trials_for_width(min(max(est["value"], 0.0), 1.0), hi - lo, level)
    finite = np.isfinite(same)  # a zero-width interval (every prediction and outcome alike): no finite count
    return {"value": est["value"], "ci95": [lo, hi], "real_episodes": k, "lambda": est["lambda"],
            "real_only": {"value": float(real.mean()), "ci95": wilson_interval(real.sum(), k, level)},
            "real_trials_same_width": round(same, 1) if finite else None,
            "real_trials_saved": round(max(0.0, same - k), 1) if finite else None}


def outcome_trust(probability: list[np.ndarray], learned: list[np.ndarray], real: list[np.ndarray],
                  samples: int | None = None) -> dict:
    """Per-episode success probabilities (N learned samples each) against the real outcomes of the same initial
    states, pooled over policies: Brier score (and the single learned outcome's, for reference), and two AUROCs
    against a mismatch between the learned outcome (stream 0) and the real one: of the uncertainty p (1 - p),
    and (with `samples` = N > 1) of the mismatch probability the other N - 1 samples give the stream-0 outcome,
    q = 1 - p' after a learned success and p' after a failure (p' their success share)."""
    p = np.concatenate([np.asarray(a, float)[: len(r)] for a, r in zip(probability, real)])
    single = np.concatenate([np.asarray(a, float)[: len(r)] for a, r in zip(learned, real)])
    y = np.concatenate([np.asarray(r, float) for r in real])
    mismatch = single != y
    out = {"episodes": int(len(y)), "mismatches": int(mismatch.sum()),
           "brier": float(np.mean((p - y) ** 2)), "brier_single_sample": float(np.mean((single - y) ** 2)),
           "auroc": auroc(p * (1 - p), mismatch)}
    if samples and samples > 1:
        others = np.clip((samples * p - single) / (samples - 1), 0.0, 1.0)
        out["auroc_mismatch_probability"] = auroc(np.where(single > 0.5, 1 - others, others), mismatch)
    return out
