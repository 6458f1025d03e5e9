"""Success rate of every graded PushT policy in the real simulator (gym-pusht), over N seeds.
This ordering is the ground truth a learned simulator must reproduce.
Usage: .venv/bin/python benchmarks/pusht_levels.py [--seeds 50] [--threshold 0.9]"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval.rollout import rollout
from cosmos3_robot.tasks.pusht import PUSHT_LEVELS, make_pusht_policy


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--threshold", type=float, default=0.90)
    parser.add_argument("--json", default=None, help="write per-episode results here")
    args = parser.parse_args()
    env = PushTRealEnv(success_threshold=args.threshold)
    rows, raw = [], {}
    print(f"| policy | success (coverage >= {args.threshold:.2f}) | mean max coverage | mean length | s |")
    print("|---|---|---|---|---|")
    for name in PUSHT_LEVELS:
        policy = make_pusht_policy(name)
        t0 = time.perf_counter()
        best = []
        for seed in range(args.seeds):
            cov = []
            res = rollout(env, policy, seed=seed, on_step=lambda o, a, r, term, info: cov.append(info["coverage"]))
            best.append((res["success"], max(cov), res["info"]["coverage"], res["length"]))
        b = np.array(best, dtype=float)
        raw[name] = best
        rows.append(name)
        print(f"| {name} | {b[:, 0].mean():.2f} | {b[:, 1].mean():.3f} | {b[:, 3].mean():.0f} |"
              f" {time.perf_counter() - t0:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f)


if __name__ == "__main__":
    main()
