"""PushT renderers side by side, in one run: for each structured checkpoint given, its renderer's time to
draw a batch of 1 / 8 / 64 frames, and how faithful its frames are on states it never saw: PSNR against real
gym-pusht frames of the same random states, and how far the T's pose read back from its frames by the
experts' own estimator (`vision.block_pose_features`) lies from the state drawn (median and p90, workspace
units and degrees). Real gym-pusht frames read back the same way give the floor.
Usage: .venv/bin/python benchmarks/renderer_bench.py [--checkpoints pusht_tower,pusht_fast,DIR] [--states 400]"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cosmos3_robot.backends import load_backend
from cosmos3_robot.tasks.pusht.real import PushTRealEnv
from cosmos3_robot.tasks.pusht.vision import block_pose_features, features_to_pose, pose_to_features


def random_states(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) pusher positions anywhere it reaches and (n, 3) T poses anywhere inside the walls, any angle."""
    rng = np.random.default_rng(seed)
    return rng.uniform(20, 492, (n, 2)), np.column_stack([rng.uniform(70, 440, (n, 2)), rng.uniform(-np.pi, np.pi, n)])


def readback(frames: np.ndarray, poses: np.ndarray) -> tuple[float, float, float, float]:
    got = features_to_pose(block_pose_features(frames))
    dist = np.linalg.norm(got[:, :2] - poses[:, :2], axis=1)
    angle = np.degrees(np.abs((got[:, 2] - poses[:, 2] + np.pi) % (2 * np.pi) - np.pi))
    return np.median(dist), np.percentile(dist, 90), np.median(angle), np.percentile(angle, 90)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean((1, 2, 3)) / 255**2
    return float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-10))))


def ms_per_draw(draw, states: torch.Tensor, n: int, repeats: int = 30) -> float:
    batch = states[:n]
    draw(batch)
    t0 = time.perf_counter()
    for _ in range(repeats):
        draw(batch)
    return (time.perf_counter() - t0) / repeats * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", default="pusht_tower,pusht_fast")
    parser.add_argument("--states", type=int, default=400)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    agents, poses = random_states(args.states, args.seed)
    env = PushTRealEnv()
    real = np.stack([env.render_state(np.array([*a, *p])) for a, p in zip(agents, poses)])
    env.close()
    print("| renderer | parameters | ms / 1 frame | ms / 8 | ms / 64 | PSNR vs real (dB) | T read back: "
          "position median / p90 | angle median / p90 (deg) |\n|---|---|---|---|---|---|---|---|")
    d, dp, a, ap = readback(real, poses)
    print(f"| real gym-pusht | - | - | - | - | - | {d:.2f} / {dp:.1f} | {a:.2f} / {ap:.1f} |")
    for name in args.checkpoints.split(","):
        world = load_backend(name).task
        states = torch.from_numpy(np.concatenate([world.state_norm.normalize(agents), pose_to_features(poses)], 1)
                                  .astype(np.float32))
        frames = np.concatenate([world._draw(states[i : i + 64]) for i in range(0, len(states), 64)])
        times = [ms_per_draw(world._draw, states, n) for n in (1, 8, 64)]
        params = sum(p.numel() for p in world.renderer.parameters())
        d, dp, a, ap = readback(frames, poses)
        kind = type(world.renderer).__name__
        print(f"| {name} ({kind}) | {params / 1e3:.0f} k | {times[0]:.2f} | {times[1]:.2f} | {times[2]:.2f} | "
              f"{psnr(frames, real):.1f} | {d:.2f} / {dp:.1f} | {a:.2f} / {ap:.1f} |")


if __name__ == "__main__":
    main()
