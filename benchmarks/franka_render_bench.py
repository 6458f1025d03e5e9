"""The real Franka cube scene's cost per step against what it renders, in one run: env steps/s and MuJoCo
renders per step with all three 180x320 cameras (the spec), one camera, one camera at 96x96, and state only
(`FrankaCubeRealEnv(cameras=..., image_size=...)`).
Usage: .venv/bin/python benchmarks/franka_render_bench.py [--steps 30]"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


def main():
    from cosmos3_robot.tasks.franka_cube import FrankaCubeRealEnv

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    runs = [("all three cameras, 180x320", {}), ("exterior_1_left only, 180x320", {"cameras": ["exterior_1_left"]}),
            ("exterior_1_left only, 96x96", {"cameras": ["exterior_1_left"], "image_size": (96, 96)}),
            ("state only (no camera)", {"cameras": []})]
    print("| rendering | renders / step | env steps/s |\n|---|---|---|")
    for name, kw in runs:
        env = FrankaCubeRealEnv(**kw)
        obs, _ = env.reset(seed=0)
        hold = obs["observation.state"][:8].copy()
        env.step(hold)
        env.renders = 0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            env.step(hold)
        sps = args.steps / (time.perf_counter() - t0)
        print(f"| {name} | {env.renders / args.steps:.0f} | {sps:.1f} |")
        env.close()


if __name__ == "__main__":
    main()
