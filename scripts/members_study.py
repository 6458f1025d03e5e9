"""Do dynamics members trained apart flag learned/real mismatches better than noise streams of one member?
Each policy runs from each seed in the real PushT and, per member checkpoint, on `--streams` noise streams of the
learned one; the judge is the first member's stream 0 (the ordinary learned run). Prints per policy and, pooled
(`eval.trust.outcome_trust`), the AUROC against a learned/real mismatch of the probability that the other samples
disagree with the judge, from the first member's streams alone (noise) or from all members (members), and the Brier
score of each success probability. Writes every outcome to --out (JSON). The run in docs/trust.md:

    .venv/bin/python scripts/members_study.py --policies "world-model#chunk=8&plan=1,world-model#chunk=16&plan=1" \\
        --seed 980000 --episodes 30 --streams 2 --out outputs/members.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np

from cosmos3_robot.cli import learned_vec_env
from cosmos3_robot.eval.episodes import run_learned, run_real
from cosmos3_robot.eval.trust import outcome_trust
from cosmos3_robot.tasks import make_policy, make_real_env


def real_job(name: str, seeds: list[int]) -> list[float]:
    env = partial(make_real_env, "pusht", max_episode_steps=300)
    return run_real(partial(make_policy, "pusht"), name, seeds, env)["success"].tolist()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policies", required=True)
    p.add_argument("--members", default="pusht_tower,pusht_fast,pusht_small", help="the judge first")
    p.add_argument("--seed", type=int, default=980000)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if a.streams < 2:
        p.error(f"--streams {a.streams}: the noise-only score compares the judge with its member's other streams; "
                "give 2 or more")
    policies, members = a.policies.split(","), a.members.split(",")
    seeds = list(range(a.seed, a.seed + a.episodes))
    out = {}
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:  # the real side beside the learned
        real = {name: pool.submit(real_job, name, seeds) for name in policies}
        envs = [learned_vec_env("pusht", m, 300) for m in members]
        for name in policies:
            out[name] = {"learned": {}}
            for m, make in zip(members, envs):
                r = run_learned(partial(make_policy, "pusht"), name, seeds, make, samples=a.streams)
                out[name]["learned"][m] = {"stream0": r["success"].tolist(), "probability": r["probability"].tolist()}
        for name in policies:
            out[name]["real"] = real[name].result()
    with open(a.out, "w") as f:
        json.dump(out, f)
    first = [out[name]["learned"][members[0]] for name in policies]
    judge, real = [np.array(f["stream0"]) for f in first], [np.array(out[name]["real"]) for name in policies]
    p_noise = [np.array(f["probability"]) for f in first]
    p_members = [np.mean([out[name]["learned"][m]["probability"] for m in members], 0) for name in policies]
    for name, j, y, pn, pm in zip(policies, judge, real, p_noise, p_members):
        print(f"{name}: real {y.mean():.2f}, learned {j.mean():.2f}, P noise {pn.mean():.2f}, P members "
              f"{pm.mean():.2f}, {int((j != y).sum())} mismatches")
    noise = outcome_trust(p_noise, judge, real, samples=a.streams)
    both = outcome_trust(p_members, judge, real, samples=a.streams * len(members))
    print(f"pooled ({noise['episodes']} episodes, {noise['mismatches']} mismatches): AUROC of the other samples' "
          f"mismatch probability, noise {noise['auroc_mismatch_probability']:.3f}, members "
          f"{both['auroc_mismatch_probability']:.3f}; Brier noise {noise['brier']:.3f}, members {both['brier']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
