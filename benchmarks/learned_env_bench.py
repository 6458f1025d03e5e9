"""Learned-simulator speed next to the real one, in one run: env steps/s of LearnedEnv (1 env) and
LearnedVectorEnv (8 and 64 envs, one backend call per step) for each checkpoint given, against
gym-pusht's raw steps/s; plus each checkpoint's size and parameter count.
A checkpoint may carry a runtime, `NAME@torch` or `NAME@onnxruntime` (structured backends; default: the
backend's own choice), so eager and ONNX Runtime rows come from the same run.
Usage: .venv/bin/python benchmarks/learned_env_bench.py [--checkpoints pusht_tower@torch,pusht_tower,DIR,...]
       [--steps 30] [--precision float32|bfloat16]"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cosmos3_robot.backends import checkpoint_path, load_backend
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv

START = "cosmos3_robot/PushTReal-v0"


def steps_per_second(env, n: int, steps: int, rng) -> float:
    env.reset(seed=0)
    shape = (n, 2) if n > 1 else (2,)
    env.step(rng.uniform(0, 512, shape))  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(0, 512, shape))
    return n * steps / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", default="pusht_tower@torch,pusht_tower@onnxruntime")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sizes", default="1,8,64")
    parser.add_argument("--precision", default=None, help="structured backends: float32 or bfloat16")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real = PushTRealEnv(max_episode_steps=10**9, success_threshold=1.01)
    real.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(500):
        real.step(rng.uniform(0, 512, 2))
    rows = [("real gym-pusht", "-", 1, 500 / (time.perf_counter() - t0))]
    notes = []
    for ckpt in args.checkpoints.split(","):
        kw = {"precision": args.precision} if args.precision else {}
        name, _, runtime = ckpt.partition("@")
        if runtime:
            kw["runtime"] = runtime
        backend = load_backend(name, **kw)
        for n in (int(s) for s in args.sizes.split(",")):
            env = LearnedEnv(backend, START, success_threshold=1.01) if n == 1 else \
                LearnedVectorEnv(n, backend, START, success_threshold=1.01)
            rows.append((type(env).__name__, ckpt, n, steps_per_second(env, n, args.steps, rng)))
        path = checkpoint_path(name)
        size = sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())
        graphs = sum(p.stat().st_size for p in Path(path).glob("onnx/*.onnx"))
        module = getattr(backend, "task", None) or getattr(backend, "model", None)
        params = sum(p.numel() for p in module.parameters())
        runtime = getattr(backend, "runtime", "torch")
        notes.append(f"{ckpt}: {type(backend).__name__} ({runtime}), {size / 1e6:.2f} MB on disk "
                     f"(+ {graphs / 1e6:.2f} MB ONNX graphs), {params / 1e6:.2f} M parameters")
    print("| simulator | checkpoint | envs | env steps/s |\n|---|---|---|---|")
    for name, ckpt, n, sps in rows:
        print(f"| {name} | {ckpt} | {n} | {sps:.1f} |")
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
