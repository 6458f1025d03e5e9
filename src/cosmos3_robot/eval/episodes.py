"""One policy's episodes over a list of seeds, in the learned simulator (batched) or a real one: the unit of
work of `evaluate`, serial or spread over Ray workers (`eval.distributed`)."""

from __future__ import annotations

import numpy as np

from .rollout import rollout


def run_learned(make_policy, name: str, seeds: list[int], make_vec_env, batch: int = 50, samples: int = 1) -> dict:
    """All seeds in batches through a native batched learned env (`make_vec_env(n)` -> a VectorEnv whose
    `reset(seed=[...])` starts each sub-env from its seed): one backend call per step per batch. With
    autoreset disabled (`LearnedVectorEnv(..., autoreset_mode="Disabled")`) finished episodes cost nothing.

    With `samples` > 1 each seed is rolled that many times, on the backend's noise streams 0..samples-1
    (`reset(options={"noise_stream": ...})`; the policy keeps the seed's own randomness, as in the real run):
    "success", "return", "length" and the disagreement stay stream 0's (the single-sample run), and
    "probability" is the share of the samples that succeed. `make_vec_env` may be a list of M such factories,
    one per dynamics member (independently trained checkpoints of the task): sample j then runs on member
    j mod M, on its noise stream j div M (sample 0 is the first member's ordinary run)."""
    members = list(make_vec_env) if isinstance(make_vec_env, (list, tuple)) else [make_vec_env]
    M = len(members)
    runs = [(s, j) for j in range(samples) for s in seeds]  # stream 0 first: its batches are the 1-sample run's
    success, ret, length = np.zeros(len(runs), bool), np.zeros(len(runs)), np.zeros(len(runs), int)
    disagreement, peak = np.zeros(len(runs)), np.zeros(len(runs))
    reported = False
    for m, factory in enumerate(members):
        mine = [i for i, (_, j) in enumerate(runs) if j % M == m]
        for start in range(0, len(mine), batch):
            part = mine[start : start + batch]
            chunk = [runs[i][0] for i in part]
            streams = [runs[i][1] // M for i in part]
            venv = factory(len(chunk))
            obs, _ = venv.reset(seed=chunk, options={"noise_stream": streams} if samples > 1 else None)
            policies = [make_policy(name, seed=s) for s in chunk]
            for p, s in zip(policies, chunk):
                p.reset(s)
            n = len(chunk)
            done, succ, r_sum, steps = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n), np.zeros(n, int)
            d_sum, d_max = np.zeros(n), np.zeros(n)
            last = None
            while not done.all():
                # finished sub-envs repeat their last action: it is valid, and its result is not counted
                actions = np.stack([policies[i].select_action({k: v[i] for k, v in obs.items()}) if not done[i]
                                    else last[i] for i in range(n)])
                obs, r, term, trunc, info = venv.step(actions)
                last = actions
                live = ~done
                r_sum[live] += r[live]
                if "disagreement" in info:  # the backend's per-step uncertainty, averaged over the episode
                    reported = True
                    d = np.asarray(info["disagreement"], float)
                    d_sum[live] += d[live]
                    d_max[live] = np.maximum(d_max[live], d[live])
                steps[live] += 1
                succ |= live & term
                done |= live & (term | trunc)
            venv.close()
            success[part], ret[part], length[part] = succ, r_sum, steps
            disagreement[part], peak[part] = d_sum / np.maximum(steps, 1), d_max
    n = len(seeds)
    all_success = success.astype(float).reshape(samples, n)
    out = {"success": all_success[0], "return": ret[:n].copy(), "length": length[:n].astype(float)}
    if samples > 1:
        out["probability"] = all_success.mean(0)
    if reported:
        out |= {"disagreement": disagreement[:n].copy(), "disagreement_max": peak[:n].copy()}
    return out


def run_real(make_policy, name: str, seeds: list[int], env) -> dict:
    """Each seed closed loop in a real simulator (`env`, or a picklable factory of one)."""
    env = env() if callable(env) and not hasattr(env, "step") else env
    success, ret, length = [], [], []
    for s in seeds:
        res = rollout(env, make_policy(name, seed=s), seed=s)
        success.append(float(res["success"]))
        ret.append(res["return"])
        length.append(res["length"])
    return {"success": np.array(success), "return": np.array(ret), "length": np.array(length, float)}
