"""The real side of the ALOHA transfer-cube ladder, rendering only each episode's first frame: the scripted ladder
reads the top camera once (the cube's place at the first step) and the joints after that, so its actions, and
gym-aloha's physics and success, are those of the full scene, without the 0.1 s top frame of every later step
(`--check N` reruns N seeds per policy in the full scene and fails on any difference). Writes an
eval_partial.json that `cosmos3-robot eval --real-from` reads.

    .venv/bin/python scripts/aloha_real_ladder.py --policies expert,expert-noise3 --seed 0 --episodes 30 --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cosmos3_robot.tasks import make_policy, make_real_env

TASK = "aloha_transfer_cube"


def run(env, policy: str, seed: int, max_steps: int) -> dict:
    pol = make_policy(TASK, policy, seed=seed)
    pol.reset(seed)
    obs, _ = env.reset(seed=seed)
    ret, success, length = 0.0, False, 0
    for length in range(1, max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(pol.select_action(obs))
        ret += reward
        success = success or bool(info["is_success"])
        if terminated or truncated:
            break
    return {"success": float(success), "return": ret, "length": float(length)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policies", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--check", type=int, default=0, help="seeds per policy also run in the full scene")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    seeds = list(range(a.seed, a.seed + a.episodes))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"seeds": seeds, "args": vars(a), "policies": {}}
    # one scene of each kind for every episode (each costs ~130 MB); frames="first": later observations repeat
    # the first frame, which the ladder does not read again
    env = make_real_env(TASK, max_episode_steps=a.max_steps, frames="first")
    full_env = make_real_env(TASK, max_episode_steps=a.max_steps) if a.check else None
    for name in a.policies.split(","):
        rows = [run(env, name, s, a.max_steps) for s in tqdm(seeds, desc=name)]
        for s, row in zip(seeds[: a.check], rows):
            full = run(full_env, name, s, a.max_steps)
            if full != row:
                raise SystemExit(f"{name} seed {s}: first-frame-only {row} != full scene {full}")
        report["policies"][name] = {"real": {k: [r[k] for r in rows] for k in ("success", "return", "length")}}
        print(name, "real success", np.mean([r["success"] for r in rows]), flush=True)
        (out / "eval_partial.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
