"""Success rate and speed of the Franka cube scene's policies (MuJoCo, `droid` spec), over N seeds:
the expert (pixels + camera calibration + proprioception), its noisy variants, and random.
Usage: MUJOCO_GL=egl .venv/bin/python benchmarks/franka_levels.py [--seeds 10] [--max-steps 110]"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from cosmos3_robot.tasks.franka_cube import FrankaCubeRealEnv  # noqa: E402
from cosmos3_robot.eval.rollout import rollout  # noqa: E402
from cosmos3_robot.tasks.franka_cube.expert import make_franka_policy  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=110)
    parser.add_argument("--policies", default="expert,expert-noise1,expert-noise2,random")
    args = parser.parse_args()
    env = FrankaCubeRealEnv(max_episode_steps=args.max_steps)
    print("| policy | success | mean length | env steps/s (3 cameras 180x320 + physics) |")
    print("|---|---|---|---|")
    for name in args.policies.split(","):
        policy = make_franka_policy(name)
        t0, results = time.perf_counter(), []
        for seed in range(args.seeds):
            results.append(rollout(env, policy, seed=seed))
        seconds = time.perf_counter() - t0
        steps = sum(r["length"] for r in results)
        print(f"| {name} | {np.mean([r['success'] for r in results]):.2f} | {steps / len(results):.0f} |"
              f" {steps / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
