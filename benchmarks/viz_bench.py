"""Rerun logging benchmark: a 500-step, 2-camera rollout (real + predicted + |diff| per camera,
actions, state, success probability, end-effector path and its projection) written to an .rrd.
Prints logging time per step and .rrd bytes per step.
Usage: .venv/bin/python benchmarks/viz_bench.py [--steps 500] [--quality 85]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval import record
from cosmos3_robot.tasks.pusht import make_pusht_policy
from cosmos3_robot.viz import RolloutLog, save_rollout, spec_calibrations


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--quality", type=int, default=85)
    args = parser.parse_args()
    env = PushTRealEnv(max_episode_steps=args.steps, success_threshold=1.01)
    ep = record(env, make_pusht_policy("expert-noise0.4"), seed=0)
    spec = load_spec("pusht")
    real = ep["frames"]
    side = real[:, :, ::-1].copy()  # a second camera: the mirrored view
    noise = np.random.default_rng(0).integers(-12, 12, real.shape)
    pred = np.clip(real.astype(int) + noise, 0, 255).astype(np.uint8)
    calib = spec_calibrations(spec)
    log = RolloutLog(spec=spec, real={"top": real, "side": side}, predicted={"top": pred, "side": pred[:, :, ::-1]},
                     actions=ep["actions"], states=ep["states"], success_prob=np.linspace(0, 1, len(real)),
                     calibrations=calib)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = save_rollout(log, Path(tmp) / "bench.rrd", jpeg_quality=args.quality)
        dt = time.perf_counter() - t0
        size = path.stat().st_size
    n = len(real)
    print("| steps | cameras | images/step | ms/step (logging) | .rrd KB/step | .rrd MB total |")
    print("|---|---|---|---|---|---|")
    print(f"| {n} | 2 (96x96) | 6 | {dt / n * 1000:.2f} | {size / n / 1024:.1f} | {size / 1e6:.2f} |")


if __name__ == "__main__":
    main()
