"""Evaluate policies in the learned simulator and, optionally, the real one from identical initial
states (episode k of every policy starts from seed `seed0 + k` in both), then compare rankings."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from tqdm.auto import tqdm

from .episodes import run_learned, run_real
from .metrics import bootstrap_ci, uncertainty_report
from .trust import estimate_real_success, outcome_trust
from ..errors import UserError


def die_with_parent(parent: int | None = None) -> None:
    """In a worker process: be killed when the process that started it dies, even by SIGKILL (Linux
    prctl(PR_SET_PDEATHSIG)), so a killed eval never leaves a real-simulator worker running alone. A spawned
    worker gets here only after its imports (seconds on a cold start): if `parent` (the starting process's pid)
    died before that, the signal will never come, so it exits now."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), its wall seconds), timed where it runs (a real-simulator worker's task too)."""
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def _run_serial(policies, make_policy, seeds, make_vec_env, real_env, known, real_workers, on_policy,
                progress, samples: int = 1, real_seeds: list[int] | None = None,
                wall: dict | None = None) -> tuple[dict, dict]:
    """`evaluate`'s work in this process (the real simulator in `real_workers` processes beside it). `wall` gets
    the seconds spent: "learned" (this process), "real" (summed over the real runs, wherever they ran) and
    "waiting_for_real" (this process idle until a worker's real run finished)."""
    learned, real = {}, {}
    wall = {} if wall is None else wall
    wall.update(learned=0.0, real=0.0, waiting_for_real=0.0)
    real_seeds = seeds if real_seeds is None else real_seeds
    pool = futures = None
    threads = torch.get_num_threads()
    if real_env is not None and real_workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(real_workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=die_with_parent, initargs=(os.getpid(),))
        futures = {name: pool.submit(_timed, run_real, make_policy, name, real_seeds, real_env) for name in policies
                   if name not in known}
        # the workers take cores of their own: more model threads than the cores left only wait on each other
        torch.set_num_threads(max(1, threads - real_workers))
    try:
        for name in tqdm(policies, desc="policies", disable=not progress):
            if make_vec_env is not None:
                learned[name], seconds = _timed(run_learned, make_policy, name, seeds, make_vec_env, samples=samples)
                wall["learned"] += seconds
            if name in known:
                real[name] = known[name]
            elif futures is not None:
                start = time.perf_counter()
                real[name], seconds = futures[name].result()
                wall["waiting_for_real"] += time.perf_counter() - start
                wall["real"] += seconds
            elif real_env is not None:
                real[name], seconds = _timed(run_real, make_policy, name, real_seeds, real_env)
                wall["real"] += seconds
            if on_policy is not None:
                on_policy(name, {"learned": learned.get(name), "real": real.get(name)})
    finally:
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):  # do not leave a worker running alone
                proc.kill()
            pool.shutdown(cancel_futures=True)
            torch.set_num_threads(threads)
    return learned, real


@dataclass(frozen=True)
class EvalConfig:
    """How `evaluate` runs. `real_workers` > 0: the real simulator in that many worker processes beside the
    learned one; `workers` > 0: (policy, seed batch) tasks over that many Ray actors (a local Ray cluster, or the
    one at `address`); `flag_threshold`: flag episodes whose mean disagreement is above it; `n_boot`: bootstrap
    resamples of each metric's CI; `samples` > 1: each initial state rolled that many times in the learned
    simulator on independent noise streams (a success probability per state); `real_budget`: run only the
    first that many initial states in the real simulator and estimate real success from them and the learned
    episodes (`trust.estimate_real_success`)."""

    progress: bool = True
    n_boot: int = 1000
    real_workers: int = 0
    workers: int = 0
    address: str | None = None
    flag_threshold: float | None = None
    samples: int = 1
    real_budget: int | None = None


class Metric(TypedDict):
    value: float
    ci95: list[float]


class PolicyResult(TypedDict, total=False):
    """One policy in one simulator: mean success / return / length (and disagreement where the backend reports
    it), and per-episode lists: `episodes` (success), `<key>_per_episode`."""

    success: float
    episodes: list[float]


class EvalReport(TypedDict, total=False):
    """`evaluate`'s result, as eval.json stores it: the seeds; per policy its "learned" and "real"
    `PolicyResult`; "metrics" (pearson, spearman, mmrv, mae) of learned against real success; "uncertainty"
    (`metrics.uncertainty_report`) where the backend reports a disagreement; "wire" where policies were served;
    "real_seeds" (with a real budget), "trust" (with samples > 1); "wall_s": seconds in the learned simulator,
    the real one (summed over its runs, in workers beside the learned one where `real_workers` > 0), waiting for
    those workers, and in all (Ray runs: the total only)."""

    seeds: list[int]
    policies: dict[str, dict[str, PolicyResult]]
    metrics: dict[str, Metric]
    uncertainty: dict
    wire: dict
    real_seeds: list[int]
    trust: dict
    wall_s: dict[str, float]


def evaluate(policies: list[str], make_policy, seeds: list[int], make_vec_env=None, real_env=None,
             config: EvalConfig | None = None, *, on_policy=None, real_results: dict | None = None,
             vec_env_factory=None, prior: dict | None = None) -> EvalReport:
    """Success, return and length per policy in the learned simulator (`make_vec_env(n)`, see `run_learned`)
    and the real one (`real_env`), episode k from seed `seeds[k]` in both; with both, Pearson / Spearman /
    MMRV of the success rates with bootstrap CIs. `on_policy(name, rows)` sees each policy's results as soon
    as they are done (to write them before the next policy starts).

    `config` (`EvalConfig`): with `real_workers` > 0 the real simulator runs in that many worker processes while
    this process runs the learned one (the real physics and the model then share the CPU cores); `make_policy` and `real_env` must
    then be picklable (a module-level function or functools.partial, an env factory). `real_results`
    (name -> {"success": per-episode array, ...}, e.g. `read_real_results` of an earlier report with the same
    seeds) stands in for the real simulator for the policies it holds.

    Where the backend reports a per-step "disagreement", each learned episode's mean and max go into the report;
    with real results too, `report["uncertainty"]` says how well it picks out the episodes whose learned and
    real outcomes differ (AUROC; with `flag_threshold`, the flagged share and mismatch rates).

    With `workers` > 0, (policy, seed batch) tasks fan out over that many Ray actors (`eval.distributed`; a local
    Ray cluster, or the one at `address`): `vec_env_factory()` -> make_vec_env is then built in each actor;
    the report is the serial one. `prior` (name -> {"learned": ..., "real": ...} per-episode arrays, as
    `on_policy` saw them) holds policies finished by an earlier, interrupted run: they are not run again."""
    if not seeds:
        raise UserError("evaluate needs at least one seed (--episodes >= 1)")
    cfg = config or EvalConfig()
    progress, n_boot, real_workers, workers = cfg.progress, cfg.n_boot, cfg.real_workers, cfg.workers
    address, flag_threshold, samples, budget = cfg.address, cfg.flag_threshold, cfg.samples, cfg.real_budget
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise UserError(f"samples={samples!r}: give a whole number >= 1 of learned rollouts per initial state (--samples)")
    if budget is not None and not (isinstance(budget, (int, np.integer)) and 2 <= budget <= len(seeds)):
        raise UserError(f"real_budget={budget!r}: give a whole number of real episodes from 2 to the number of seeds "
                        f"({len(seeds)}) (--real-budget, at most --episodes)")
    real_seeds = seeds if budget is None else seeds[:budget]
    started, wall = time.perf_counter(), {}
    prior = {k: v for k, v in (prior or {}).items() if k in policies}
    all_policies, policies = policies, [p for p in policies if p not in prior]
    known = {k: {m: np.asarray(v, float)[: len(real_seeds)] if np.ndim(v) else np.asarray(v, float)
                 for m, v in r.items()} for k, r in (real_results or {}).items()}
    if workers > 0:
        from .distributed import run_on_ray

        if make_vec_env is not None and vec_env_factory is None:
            raise UserError("workers > 0 needs vec_env_factory (a picklable () -> make_vec_env); each actor builds "
                             "its own learned env")
        learned, real = run_on_ray(policies, make_policy, seeds, vec_env_factory, real_env, workers, address,
                                   progress=progress, skip_real=set(known), samples=samples,
                                   real_seeds=real_seeds)
        for name in policies:
            if name in known:
                real[name] = known[name]
            if on_policy is not None:
                on_policy(name, {"learned": learned.get(name), "real": real.get(name)})
    else:
        learned, real = _run_serial(policies, make_policy, seeds, make_vec_env, real_env, known, real_workers,
                                    on_policy, progress, samples, real_seeds, wall)
    for name, rows in prior.items():
        for where, res in (("learned", learned), ("real", real)):
            if rows.get(where) is not None:
                res[name] = {k: np.asarray(v, float) for k, v in rows[where].items()}
    policies = all_policies
    report = {"seeds": seeds, "policies": {}, "metrics": {},
              "wall_s": {k: round(v, 2) for k, v in {**wall, "total": time.perf_counter() - started}.items()}}
    if budget is not None:
        report["real_seeds"] = real_seeds
    for name in policies:
        row = {}
        for where, res in (("learned", learned), ("real", real)):
            if name in res:
                row[where] = {k: float(v.mean()) for k, v in res[name].items()}
                row[where]["episodes"] = [float(x) for x in res[name]["success"]]
                for key in ("return", "length", "disagreement", "disagreement_max", "probability"):
                    if key in res[name]:
                        row[where][f"{key}_per_episode"] = [float(x) for x in res[name][key]]
        if budget is not None and name in learned and name in real:
            predicted = learned[name].get("probability", learned[name]["success"])
            row["estimate"] = estimate_real_success(predicted, real[name]["success"])
        report["policies"][name] = row
    k = len(real_seeds)  # learned episodes paired with real ones: the first k
    paired = lambda res, key: [res[p][key][:k] for p in policies]  # noqa: E731
    if learned and real and len(policies) >= 2:
        for metric in ("pearson", "spearman", "mmrv", "mae"):
            value, lo, hi = bootstrap_ci(paired(learned, "success"), paired(real, "success"), metric, n_boot=n_boot)
            report["metrics"][metric] = {"value": value, "ci95": [lo, hi]}
    if learned and real and all("disagreement" in learned[p] for p in policies):
        report["uncertainty"] = uncertainty_report(
            paired(learned, "success"), paired(real, "success"), paired(learned, "disagreement"), flag_threshold,
            disagreement_max=paired(learned, "disagreement_max"))
    if learned and real and samples > 1:
        report["trust"] = outcome_trust(paired(learned, "probability"), paired(learned, "success"),
                                        paired(real, "success"), samples) | {"samples": samples}
    return report


def read_real_results(path: str | Path, seeds: list[int]) -> dict:
    """The real simulator's per-episode results from an earlier report (eval.json or eval_partial.json),
    checked to have been run on `seeds`."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"--real-from {str(path)!r} is not a readable JSON report ({type(e).__name__}: {e}); give "
                        "the eval.json or eval_partial.json of an earlier eval --real") from None
    if not isinstance(report, dict) or not isinstance(report.get("policies"), dict):
        raise UserError(f"--real-from {str(path)!r} is a JSON {type(report).__name__}, not an eval report (an object "
                        "with 'seeds' and 'policies'); give the eval.json of an earlier eval --real")
    if list(report.get("seeds", [])) != list(seeds):
        raise UserError(f"{path} was run on seeds {report.get('seeds', [])[:3]}... ({len(report.get('seeds', []))}); "
                         f"this eval uses {seeds[:3]}... ({len(seeds)}): give the same --seed and --episodes")
    out = {}
    for name, row in report["policies"].items():
        real = row.get("real")
        if not real:
            continue
        if "episodes" not in real:  # eval_partial.json: per-episode lists already
            out[name] = {k: np.asarray(real[k], float) for k in ("success", "return", "length")}
            continue
        # eval.json: per-episode success in "episodes"; returns and lengths per episode where the report kept
        # them, else their means (all a report before per-episode lists had)
        out[name] = {"success": np.asarray(real["episodes"], float)}
        for k in ("return", "length"):
            out[name][k] = np.asarray(real.get(f"{k}_per_episode", [real[k]]), float)
    return out


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    """Markdown table, JSON, and a learned-vs-real success scatter (PNG) in `out`; with sampled probabilities or
    real-success estimates also their Rerun view (eval_trust.rrd)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sampled = any("probability" in r.get("learned", {}) for r in report["policies"].values())
    lines = ["| policy | learned success | learned return | learned length | real success | real return | real length |"
             + (" learned P(success), mean over states |" if sampled else ""), "|---|---|---|---|---|---|---|"
             + ("---|" if sampled else "")]
    for name, row in report["policies"].items():
        cells = []
        for where in ("learned", "real"):
            r = row.get(where)
            cells += ["-"] * 3 if r is None else [f"{r['success']:.2f}", f"{r['return']:.1f}", f"{r['length']:.0f}"]
        if sampled:
            cells.append(f"{row['learned']['probability']:.2f}" if "probability" in row.get("learned", {}) else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    estimates = {n: r["estimate"] for n, r in report["policies"].items() if "estimate" in r}
    if estimates:
        lines += ["", "Real success estimated from the first K initial states run in the real simulator and the "
                      "learned simulator's predictions on all of them (prediction-powered inference, PPI++):", "",
                  "| policy | K | estimate | 95% CI | real-only (K) | Wilson 95% CI | real trials at the same width |",
                  "|---|---|---|---|---|---|---|"]
        for name, e in estimates.items():
            lines.append(f"| {name} | {e['real_episodes']} | {e['value']:.2f} | [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}] "
                         f"| {e['real_only']['value']:.2f} | [{e['real_only']['ci95'][0]:.2f}, "
                         f"{e['real_only']['ci95'][1]:.2f}] | {'-' if e['real_trials_same_width'] is None else round(e['real_trials_same_width'])} |")
    if report["metrics"]:
        lines += ["", "| metric | value | 95% CI (bootstrap over episodes) |", "|---|---|---|"]
        for m, v in report["metrics"].items():
            lines.append(f"| {m} | {v['value']:.3f} | [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] |")
    if "uncertainty" in report:
        u = report["uncertainty"]
        lines += ["", f"Disagreement (episode mean) vs learned/real outcome mismatch, per episode: AUROC "
                      f"{u['auroc']:.3f}; episode max: {u['auroc_of_episode_max']:.3f} ({u['mismatches']} mismatches "
                      f"in {u['episodes']} episodes)."]
        if "threshold" in u:
            lines.append(f"Flagged above {u['threshold']:g}: {u['flagged']} episodes; mismatch rate "
                         f"{u['mismatch_rate_flagged']:.3f} flagged, {u['mismatch_rate_unflagged']:.3f} unflagged.")
    if "trust" in report:
        t = report["trust"]
        lines += ["", f"Trust ({t['samples']} learned samples per initial state, success probability p per episode): "
                      f"Brier {t['brier']:.3f} (one sample: {t['brier_single_sample']:.3f}); AUROC of p(1-p) against "
                      f"learned/real mismatch {t['auroc']:.3f}"
                      + (f", of the other samples' mismatch probability {t['auroc_mismatch_probability']:.3f}"
                         if "auroc_mismatch_probability" in t else "")
                      + f" ({t['mismatches']} mismatches in {t['episodes']} episodes). Per episode: "
                      "`probability_per_episode` in eval.json."]
    if report.get("wall_s"):
        w = report["wall_s"]
        lines += ["", "Wall time: " + ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in w.items()
                                             if v or k in ("learned", "total")) + "."]
    for name, w in report.get("wire", {}).items():
        lines.append(f"{name}: served over {w['flavour']}'s protocol, action space {w['action_space']}.")
    paths = {"markdown": out / "eval.md", "json": out / "eval.json"}
    paths["markdown"].write_text("\n".join(lines) + "\n")
    paths["json"].write_text(json.dumps(report, indent=2))
    rows = [(n, r["learned"]["success"], r["real"]["success"]) for n, r in report["policies"].items()
            if "learned" in r and "real" in r]
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="y = x")
        for name, lr, rr in rows:
            ax.scatter(rr, lr)
            ax.annotate(name, (rr, lr), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if name in estimates:  # the real-success estimate and its interval, along the real axis
                e = estimates[name]
                ax.errorbar(e["value"], lr, xerr=[[e["value"] - e["ci95"][0]], [e["ci95"][1] - e["value"]]],
                            fmt="x", color="gray", capsize=3, lw=1)
        ax.set(xlabel="real success rate", ylabel="learned-simulator success rate", xlim=(-0.05, 1.05),
               ylim=(-0.05, 1.05), title="policy success: learned vs real")
        ax.legend(loc="lower right")
        fig.tight_layout()
        paths["plot"] = out / "eval_scatter.png"
        fig.savefig(paths["plot"], dpi=120)
        plt.close(fig)
    if sampled or estimates:  # the trust view in Rerun: per-episode probabilities and the success plot
        from ..viz.rerun_log import save_eval_report

        paths["rerun"] = save_eval_report(report, out / "eval_trust.rrd")
    return paths
