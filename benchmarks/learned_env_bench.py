"""Learned-simulator speed next to the real one, in one run: env steps/s of WorldModelEnv (1 env)
and WorldModelVectorEnv (8 and 64 envs, one model call per step) against gym-pusht's raw steps/s;
plus the shipped checkpoint's size.
Usage: .venv/bin/python benchmarks/learned_env_bench.py [--checkpoint DIR] [--steps 20]"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cosmos3_robot.envs import PushTRealEnv, WorldModelEnv, WorldModelVectorEnv, load_world_model, shipped_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sizes", default="1,8,64")
    args = parser.parse_args()
    model = load_world_model(args.checkpoint)
    rng = np.random.default_rng(0)
    real = PushTRealEnv(max_episode_steps=10**9, success_threshold=1.01)
    real.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(500):
        real.step(rng.uniform(0, 512, 2))
    real_sps = 500 / (time.perf_counter() - t0)
    rows = [("real gym-pusht", 1, real_sps)]
    for n in (int(s) for s in args.sizes.split(",")):
        if n == 1:
            env = WorldModelEnv(model, max_episode_steps=10**9, success_threshold=1.01)
            env.reset(seed=0)
            env.step(np.array([256.0, 256.0]))  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.steps):
                env.step(rng.uniform(0, 512, 2))
        else:
            env = WorldModelVectorEnv(n, model, max_episode_steps=10**9, success_threshold=1.01)
            env.reset(seed=0)
            env.step(rng.uniform(0, 512, (n, 2)))
            t0 = time.perf_counter()
            for _ in range(args.steps):
                env.step(rng.uniform(0, 512, (n, 2)))
        rows.append((f"learned ({'WorldModelEnv' if n == 1 else 'WorldModelVectorEnv'})", n,
                     n * args.steps / (time.perf_counter() - t0)))
    print(f"| simulator | envs | env steps/s |\n|---|---|---|")
    for name, n, sps in rows:
        print(f"| {name} | {n} | {sps:.1f} |")
    path = args.checkpoint or shipped_checkpoint()
    import pathlib

    size = sum(p.stat().st_size for p in pathlib.Path(path).iterdir() if p.is_file())
    params = sum(p.numel() for p in model.parameters())
    print(f"\ncheckpoint {path}: {size / 1e6:.2f} MB on disk, {params / 1e6:.2f} M parameters,"
          f" {model.cfg.sample_steps} Euler steps per env step")


if __name__ == "__main__":
    main()
