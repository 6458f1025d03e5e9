"""State dynamics of learned PushT simulators against real gym-pusht, open loop, on held-out episodes: the
T's position error (workspace units) and angle error (degrees) after h steps fed the real actions, where
the T moves and where it rests, for each checkpoint's dynamics (the Generator tower, the baseline pose MLP)
and for "no change". States are perceived from the real frames, as in training.
Usage: .venv/bin/python benchmarks/dynamics_bench.py [--checkpoints pusht_fast,DIR] [--episodes 8] [--seed 5000]"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from cosmos3_robot.backends import load_backend
from cosmos3_robot.backends.base import pad_history
from cosmos3_robot.tasks import make_policy, make_real_env
from cosmos3_robot.tasks.pusht.experts import IMAGE_KEY
from cosmos3_robot.tasks.pusht.vision import block_pose_features, features_to_pose


def episodes(n: int, seed: int, policy: str):
    env = make_real_env("pusht", max_episode_steps=120)
    out = []
    for s in range(seed, seed + n):
        pol = make_policy("pusht", policy, seed=s)
        obs, _ = env.reset(seed=s)
        pol.reset(s)
        seen, actions, done = [obs], [], False
        while not done:
            actions.append(pol.select_action(obs))
            obs, _, term, trunc, _ = env.step(actions[-1])
            seen.append(obs)
            done = term or trunc
        out.append({"frames": np.stack([o[IMAGE_KEY] for o in seen]),
                    "state": np.stack([o["observation.state"] for o in seen]), "action": np.asarray(actions)})
    return out


def open_loop(backend, ep, start: int, h: int) -> np.ndarray:
    """The T's predicted poses (h, 3) from step `start`, real actions fed in."""
    task = backend.task
    lo = max(0, start - 1)
    world = task.perceive({task.camera.name: ep["frames"][lo : start + 1]}, ep["state"][lo : start + 1])[None]
    world = pad_history(world, backend.history)  # at the first step the start repeats
    prev = ep["action"][start - 1][None] if start > 0 else task.rest_actions(world[:, -1])
    poses = []
    for k in range(h):
        a = ep["action"][start + k][None].astype(np.float64)
        out = task.step(world, a, prev, noise=None)
        nxt = out[0] if isinstance(out, tuple) else out
        world, prev = np.concatenate([world[:, 1:], nxt[:, None]], 1), a
        poses.append(features_to_pose(nxt[:, 2:6])[0])
    return np.array(poses)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", default="pusht_fast")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5000, help="held out: training data used seeds 1000-1719")
    parser.add_argument("--policy", default="expert-noise0.2")
    parser.add_argument("--horizons", default="1,4,16")
    args = parser.parse_args()
    torch.manual_seed(0)  # a sampled dynamics draws its noise here: the same table every run
    horizons = [int(h) for h in args.horizons.split(",")]
    eps = episodes(args.episodes, args.seed, args.policy)
    truth = [features_to_pose(block_pose_features(ep["frames"])) for ep in eps]
    rows = []
    models = [("no change", None)] + [(c, load_backend(c)) for c in args.checkpoints.split(",")]
    for name, backend in models:
        kind = "-" if backend is None else type(backend.task.dynamics).__name__
        for h in horizons:
            err = {True: [], False: []}
            for ep, pose in zip(eps, truth):
                for start in range(0, len(ep["action"]) - h, 4):
                    target = pose[start + h]
                    pred = pose[start] if backend is None else open_loop(backend, ep, start, h)[-1]
                    moved = np.abs(pose[start + h] - pose[start]).sum() > 1e-3
                    d_ang = abs((pred[2] - target[2] + np.pi) % (2 * np.pi) - np.pi)
                    err[bool(moved)].append((np.linalg.norm(pred[:2] - target[:2]), np.degrees(d_ang)))
            for moved in (True, False):
                e = np.array(err[moved]) if err[moved] else np.full((1, 2), np.nan)
                rows.append((name, kind, h, "moves" if moved else "rests", len(err[moved]), *e.mean(0)))
    print("| dynamics | module | h | the T | windows | position error (units) | angle error (deg) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.2f} | {r[6]:.2f} |")


if __name__ == "__main__":
    main()
