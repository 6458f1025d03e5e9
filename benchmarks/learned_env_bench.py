"""Learned-simulator speed next to the real one, in one run: env steps/s of LearnedEnv (1 env) and
LearnedVectorEnv (8 and 64 envs, one backend call per step) for each checkpoint given, against the real
simulator's raw steps/s (gym-pusht; with --env droid the MuJoCo Franka cube scene, all three cameras, and
1 and 16 envs by default); plus each checkpoint's size and parameter count.
A checkpoint may carry a runtime, `NAME@torch` or `NAME@onnxruntime` (structured backends; default: the
backend's own choice), so eager and ONNX Runtime rows come from the same run.
Usage: .venv/bin/python benchmarks/learned_env_bench.py [--env pusht|droid|aloha_transfer_cube]
       [--checkpoints pusht_tower@torch,pusht_tower,DIR,...] [--steps 30] [--precision float32|bfloat16]"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cosmos3_robot.backends import checkpoint_path, load_backend
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv
from cosmos3_robot.tasks import make_real_env, real_env_id

# per task: default checkpoints, env counts, real steps timed, the real env's options
TASKS = {"pusht": ("pusht_tower@torch,pusht_tower@onnxruntime", "1,8,64", 500,
                   {"max_episode_steps": 10**9, "success_threshold": 1.01}),
         "droid": ("franka_cube", "1,16", 20, {"max_episode_steps": 10**9}),
         "aloha_transfer_cube": ("aloha_transfer_cube", "1,16", 20, {"max_episode_steps": 10**9})}


def random_actions(space, rng, n: int | None = None):
    """Uniform in the middle half of the action box (the arm's joints stay away from their limits)."""
    mid, half = (space.low + space.high) / 2, (space.high - space.low) / 4
    return (mid + half * rng.uniform(-1, 1, (n or 1, *space.shape))).astype(np.float32)[0 if n is None else slice(None)]


def steps_per_second(env, n: int, steps: int, rng) -> float:
    env.reset(seed=0)
    space = env.single_action_space if n > 1 else env.action_space
    env.step(random_actions(space, rng, n if n > 1 else None))  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(random_actions(space, rng, n if n > 1 else None))
    return n * steps / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="pusht", choices=sorted(TASKS))
    parser.add_argument("--checkpoints", default=None, help="default: the task's shipped checkpoint(s)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sizes", default=None, help="env counts; default 1,8,64 (pusht) or 1,16 (droid)")
    parser.add_argument("--precision", default=None, help="structured backends: float32 or bfloat16")
    args = parser.parse_args()
    checkpoints, sizes, real_steps, real_kwargs = TASKS[args.env]
    args.checkpoints, args.sizes = args.checkpoints or checkpoints, args.sizes or sizes
    START = real_env_id(args.env)
    rng = np.random.default_rng(0)
    real = make_real_env(args.env, **real_kwargs)
    real.reset(seed=0)
    t0, blown = time.perf_counter(), 0
    for _ in range(real_steps):
        *_, truncated, info = real.step(random_actions(real.action_space, rng))
        if truncated:  # a scene whose physics blew up under random targets starts again (the reset is timed too)
            blown += "physics_error" in info
            real.reset(seed=0)
    rows = [(f"real {args.env}", "-", 1, real_steps / (time.perf_counter() - t0))]
    notes = [f"real {args.env}: {blown} of {real_steps} random steps blew up its physics (reset and counted)"] if blown else []
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
