"""Collection benchmark: real gym-pusht raw steps/s, and PushT frames/s collected into a LeRobot v3
dataset (video encoding included) and into the DROID layout, on this machine.
Usage: .venv/bin/python benchmarks/collect_bench.py [--episodes 3] [--steps 100]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval.rollout import collect, make_writer
from cosmos3_robot.tasks.pusht import make_pusht_policy


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    env = PushTRealEnv(max_episode_steps=args.steps, success_threshold=1.01)  # never terminate early
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n = 1000
    t0 = time.perf_counter()
    for _ in range(n):
        env.step(rng.uniform(0, 512, 2))
    raw = n / (time.perf_counter() - t0)
    expert = make_pusht_policy("expert")
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(200):
        obs, *_ = env.step(expert.select_action(obs))
    with_expert = 200 / (time.perf_counter() - t0)
    print("| what | frames/s |\n|---|---|")
    print(f"| gym-pusht raw env.step (random actions) | {raw:.0f} |")
    print(f"| gym-pusht + vision expert policy | {with_expert:.0f} |")
    for fmt in ("lerobot", "droid"):
        with tempfile.TemporaryDirectory() as tmp:
            writer = make_writer(fmt, Path(tmp) / "ds", env.embodiment)
            t0 = time.perf_counter()
            collect(env, make_pusht_policy("random"), args.episodes, writer, progress=False)
            fps = args.episodes * args.steps / (time.perf_counter() - t0)
            size = sum(p.stat().st_size for p in (Path(tmp) / "ds").rglob("*") if p.is_file())
        print(f"| collect random -> {fmt} ({args.episodes} x {args.steps} frames, {size / 1e6:.2f} MB) | {fps:.0f} |")


if __name__ == "__main__":
    main()
