"""How good are `eval --real-budget K`'s intervals? From an `eval --samples N --real` report over n seeds (every
state run in both simulators), estimate each policy's real success from the first K real episodes only (and from
`--draws` random K-subsets), and score the interval against the success measured on all n real episodes:
coverage, width, and width against the real-only (Wilson) interval at the same K. Also the per-episode trust
numbers (Brier, AUROC of p (1 - p) against learned/real mismatch).

    python scripts/trust_study.py outputs/trust/choose/eval.json [--budgets 5,10,20] [--draws 200]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from cosmos3_robot.eval.metrics import auroc
from cosmos3_robot.eval.trust import estimate_real_success, outcome_trust


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", help="eval.json files of `eval --samples N --real` runs")
    ap.add_argument("--budgets", default="5,10,20")
    ap.add_argument("--draws", type=int, default=200, help="random K-subsets per (policy, K) for the average coverage")
    ap.add_argument("--learned", default="", help="comma-separated policy-name prefixes that are learned policies")
    ap.add_argument("--pseudo", type=int, default=None, help="pseudo pairs per outcome (default: the shipped one)")
    ap.add_argument("--quantile", default=None, choices=["t", "normal"], help="default: the shipped one")
    ap.add_argument("--json", default=None, help="write the per-case rows here")
    args = ap.parse_args()
    budgets = [int(k) for k in args.budgets.split(",")]
    opts = {} if args.pseudo is None else {"pseudo": args.pseudo}
    opts |= {} if args.quantile is None else {"quantile": args.quantile}
    rng = np.random.default_rng(0)
    rows, trust_in = [], {"p": [], "single": [], "real": [], "is_learned": [], "names": []}
    print("| policy | real (all n) | learned | K | estimate, first K | 95% CI | covers | Wilson CI (first K) | "
          "narrower | coverage over draws | mean width / Wilson's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    reports = {path: json.load(open(path)) for path in args.reports}
    for path, report in reports.items():
        for name, row in report["policies"].items():
            learned, real = row["learned"], row["real"]
            if "episodes" not in real:  # eval_partial.json: per-episode lists under the metric's own name
                learned = {"episodes": learned["success"], "probability_per_episode": learned.get("probability",
                                                                                                   learned["success"])}
                real = {"episodes": real["success"]}
            real = np.asarray(real["episodes"], float)
            p = np.asarray(learned.get("probability_per_episode", learned["episodes"]), float)
            trust_in["p"].append(p)
            trust_in["single"].append(np.asarray(learned["episodes"], float))
            trust_in["real"].append(real)
            trust_in["names"].append(name)
            trust_in["is_learned"].append(any(name.startswith(x) for x in args.learned.split(",") if x))
            truth = real.mean()
            for k in budgets:
                first = estimate_real_success(p, real[:k], **opts)
                cover, width, wilson, wilson_cover = [], [], [], []
                for _ in range(args.draws):  # the same estimator on a random K of the n paired states
                    order = rng.permutation(len(real))
                    e = estimate_real_success(p[order], real[order][:k], **opts)
                    cover.append(e["ci95"][0] - 1e-9 <= truth <= e["ci95"][1] + 1e-9)
                    width.append(e["ci95"][1] - e["ci95"][0])
                    wilson.append(e["real_only"]["ci95"][1] - e["real_only"]["ci95"][0])
                    wilson_cover.append(e["real_only"]["ci95"][0] - 1e-9 <= truth <= e["real_only"]["ci95"][1] + 1e-9)
                lo, hi = first["ci95"]
                wlo, whi = first["real_only"]["ci95"]
                case = {"report": path, "policy": name, "k": k, "real": truth, "learned": float(np.mean(p)),
                        "estimate": first["value"], "ci95": [lo, hi], "covers": bool(lo - 1e-9 <= truth <= hi + 1e-9),
                        "wilson": [wlo, whi], "narrower": bool(hi - lo < whi - wlo),
                        "coverage_draws": float(np.mean(cover)), "wilson_coverage_draws": float(np.mean(wilson_cover)), "width_ratio": float(np.mean(width) / np.mean(wilson)),
                        "learned_policy": any(name.startswith(x) for x in args.learned.split(",") if x)}
                rows.append(case)
                print(f"| {name} | {truth:.2f} | {np.mean(p):.2f} | {k} | {first['value']:.2f} | [{lo:.2f}, {hi:.2f}] | "
                      f"{'yes' if case['covers'] else '**no**'} | [{wlo:.2f}, {whi:.2f}] | "
                      f"{'yes' if case['narrower'] else 'no'} | {case['coverage_draws']:.2f} | {case['width_ratio']:.2f} |")
    print()
    for k in budgets:
        sel = [r for r in rows if r["k"] == k]
        print(f"K = {k}: first-K intervals cover {sum(r['covers'] for r in sel)} of {len(sel)}; narrower than Wilson's in "
              f"{sum(r['narrower'] for r in sel)} of {len(sel)}; coverage over random draws "
              f"{np.mean([r['coverage_draws'] for r in sel]):.3f} (Wilson's "
              f"{np.mean([r['wilson_coverage_draws'] for r in sel]):.3f}); mean width / Wilson's "
              f"{np.mean([r['width_ratio'] for r in sel]):.2f}")
    samples = {r.get("trust", {}).get("samples") or r.get("args", {}).get("samples") for r in reports.values()}
    n_samples = samples.pop() if len(samples) == 1 else None
    groups = {"all": [True] * len(trust_in["p"])}
    if args.learned:
        groups |= {"scripted": [not x for x in trust_in["is_learned"]], "learned": trust_in["is_learned"]}
    per_group = {}
    for group, keep in groups.items():
        if not any(keep):
            continue
        pick = lambda key: [a for a, k in zip(trust_in[key], keep) if k]  # noqa: E731
        g = per_group[group] = outcome_trust(pick("p"), pick("single"), pick("real"), n_samples)
        # where the signal comes from: the policy's mean p(1 - p) alone (between policies), and within each policy
        ps, ys, ss = pick("p"), pick("real"), pick("single")
        mism = [np.asarray(a[: len(y)]) != y for a, y in zip(ss, ys)]
        flat = lambda arrs: np.concatenate([np.asarray(a, float) for a in arrs])  # noqa: E731
        g["auroc_policy_mean_only"] = auroc(flat([np.full(len(y), np.mean(p[: len(y)]) * (1 - np.mean(p[: len(y)])))
                                                  for p, y in zip(ps, ys)]), flat(mism).astype(bool))
        within = [auroc(p[: len(y)] * (1 - p[: len(y)]), m) for p, y, m in zip(ps, ys, mism) if 0 < m.sum() < len(m)]
        g["auroc_within_policy_mean"] = float(np.nanmean(within)) if within else float("nan")
        g["corr_within_policy"] = {n: c for n, c in zip(
            [n for n, k in zip(trust_in["names"], keep) if k],
            [float(np.corrcoef(p[: len(y)], y)[0, 1]) if np.std(p[: len(y)]) > 0 and np.std(y) > 0 else None
             for p, y in zip(ps, ys)])}
        print(f"\nper episode ({group} policies): the policy's mean p(1-p) alone: AUROC {g['auroc_policy_mean_only']:.3f}; "
              f"within a policy (mean over {len(within)}): {g['auroc_within_policy_mean']:.3f}; correlation of p "
              f"with the real outcome within a policy: " + ", ".join(
                  f"{n} {c:.2f}" for n, c in g["corr_within_policy"].items() if c is not None))
        print(f"per episode ({group} policies): Brier {g['brier']:.3f} (one sample {g['brier_single_sample']:.3f}), "
              f"AUROC against mismatch: p(1-p) {g['auroc']:.3f}, other samples' mismatch probability "
              f"{g.get('auroc_mismatch_probability', float('nan')):.3f} ({g['mismatches']} mismatches in "
              f"{g['episodes']} episodes)")
    t = per_group
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": rows, "trust": t}, f, indent=1)


if __name__ == "__main__":
    main()
