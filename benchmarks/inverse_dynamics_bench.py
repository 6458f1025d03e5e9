"""Inverse dynamics of the structured backend (`StructuredBackend.inverse_dynamics`: the env's own learned dynamics
searched for the action that explains each next frame) on held-out real gym-pusht episodes, against the
repeat-the-last-action baseline (the true action one step earlier). Prints the mean absolute action error.
Usage: .venv/bin/python benchmarks/inverse_dynamics_bench.py [--episodes 6] [--steps 40] [--seed0 910000]"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="pusht_tower")
    parser.add_argument("--policy", default="expert-noise0.2")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed0", type=int, default=910000, help="held out: no recipe trains on these seeds")
    args = parser.parse_args()
    from cosmos3_robot.backends import Context, load_backend
    from cosmos3_robot.tasks import make_policy, make_real_env

    backend = load_backend(args.checkpoint)
    env = make_real_env("pusht")
    inv_err, last_err, secs = [], [], 0.0
    for e in range(args.episodes):
        seed = args.seed0 + e
        policy = make_policy("pusht", args.policy, seed)
        policy.reset(seed)
        obs, _ = env.reset(seed=seed)
        frames, states, actions = [obs["observation.image"]], [obs["observation.state"]], []
        for _ in range(args.steps):
            a = np.asarray(policy.select_action(obs), np.float64)
            obs, *_ = env.step(a)
            frames.append(obs["observation.image"]), states.append(obs["observation.state"]), actions.append(a)
        ctx = Context({"top": np.stack(frames)[None]}, np.stack(states)[None].astype(np.float64))
        t0 = time.perf_counter()
        got = backend.inverse_dynamics(ctx, args.steps, seed=seed)
        secs += time.perf_counter() - t0
        actions = np.stack(actions)
        inv_err.append(np.abs(got[1:] - actions[1:]).mean(-1))
        last_err.append(np.abs(actions[:-1] - actions[1:]).mean(-1))
    inv, last = np.concatenate(inv_err), np.concatenate(last_err)
    print(f"{args.episodes} episodes x {args.steps} steps of {args.policy}, seeds {args.seed0}..; "
          f"{secs / (args.episodes * args.steps) * 1e3:.0f} ms a step")
    print("| predictor | mean abs action error (workspace units) | median |\n|---|---|---|")
    print(f"| inverse dynamics ({args.checkpoint}) | {inv.mean():.1f} | {np.median(inv):.1f} |")
    print(f"| repeat the last action | {last.mean():.1f} | {np.median(last):.1f} |")


if __name__ == "__main__":
    main()
