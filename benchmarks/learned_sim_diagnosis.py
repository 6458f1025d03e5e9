"""Why does the learned PushT simulator rank policies badly? Separate the judge from the dynamics.

1. Judge on real frames: every graded policy runs in real gym-pusht; the learned simulator's judge
   scores the real frames. Frame-level Pearson(judge probability, true coverage), and per policy the
   "judge-on-real" success (probability ever >= threshold) against real success (Spearman). If this
   ranks well, the reward model is not what breaks the learned simulator.
2. Dynamics horizon: for real expert episodes that succeed at step T, start the learned simulator
   from the real frames at T - k and let the same expert act for k + 20 steps. The fraction that
   reaches success tells how many steps ahead the learned dynamics carry a policy.
Usage: .venv/bin/python benchmarks/learned_sim_diagnosis.py [--checkpoint DIR] [--seeds 10]"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from cosmos3_robot.envs import LearnedDynamics, PushTRealEnv, WorldModelEnv, load_world_model
from cosmos3_robot.eval.rollout import rollout
from cosmos3_robot.policies import PUSHT_LEVELS, make_pusht_policy

IMAGE, STATE = "observation.images.top", "observation.state"


def real_episode(env, name: str, seed: int) -> dict:
    """Observations before each action, the frame after it, and coverage after it."""
    obs, after, cov = [], [], []

    def on_step(o, a, r, term, info):
        obs.append(o)
        after.append(env.render())
        cov.append(info["coverage"])

    res = rollout(env, make_pusht_policy(name, seed=seed), seed=seed, on_step=on_step)
    return {"success": res["success"], "obs": obs, "after": np.stack(after), "coverage": np.array(cov)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--horizons", default="1,3,5,10,20,40")
    parser.add_argument("--policies", default=",".join(PUSHT_LEVELS), help="part 1's policies (part 2 uses expert)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_world_model(args.checkpoint)
    dyn = LearnedDynamics(model)
    thr = dyn.success_threshold
    real = PushTRealEnv()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    t0 = time.perf_counter()
    names = list(dict.fromkeys(["expert", *args.policies.split(",")]))
    episodes = {n: [real_episode(real, n, s) for s in seeds] for n in names}
    probs = {n: [dyn.judge(dyn.encode(e["after"])) for e in eps] for n, eps in episodes.items()}
    cov = np.concatenate([e["coverage"] for eps in episodes.values() for e in eps])
    p = np.concatenate([x for xs in probs.values() for x in xs])
    real_rate = [np.mean([e["success"] for e in episodes[n]]) for n in names]
    judge_rate = [np.mean([(x >= thr).any() for x in probs[n]]) for n in names]
    print(f"## 1. judge on real frames ({args.seeds} seeds per policy, {len(p)} frames, threshold {thr})\n")
    print(f"frame-level Pearson(judge probability, true coverage) = {pearsonr(p, cov)[0]:.3f}\n")
    print("| policy | real success | judge-on-real success |\n|---|---|---|")
    for n, r, j in zip(names, real_rate, judge_rate):
        print(f"| {n} | {r:.2f} | {j:.2f} |")
    if len(names) > 2:
        print(f"\nSpearman(judge-on-real, real) = {spearmanr(judge_rate, real_rate)[0]:.3f}, "
              f"Pearson = {pearsonr(judge_rate, real_rate)[0]:.3f}\n")

    print("## 2. dynamics horizon: learned simulator started k steps before a real expert success\n")
    learned = WorldModelEnv(model, max_episode_steps=10_000)
    successes = [e for e in episodes["expert"] if e["success"]]
    print("| k (steps before real success) | episodes | learned success within k + 20 steps |\n|---|---|---|")
    for k in (int(h) for h in args.horizons.split(",")):
        hits, n = 0, 0
        for i, e in enumerate(successes):
            T = len(e["obs"])  # the action at obs[T-1] reached success
            start = T - k
            if start < 1:
                continue
            lo = max(0, start - dyn.context + 1)
            frames = np.stack([o[IMAGE] for o in e["obs"][lo : start + 1]])
            states = np.stack([o[STATE] for o in e["obs"][lo : start + 1]])
            res = rollout(learned, make_pusht_policy("expert"), seed=i, options={"frames": frames, "state": states},
                          max_steps=k + 20)
            hits, n = hits + int(res["success"]), n + 1
        print(f"| {k} | {n} | {hits / max(n, 1):.2f} |", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
