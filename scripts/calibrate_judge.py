"""Calibrate a PushT world-model (MoT backend) checkpoint's success threshold on held-out real episodes
(see cosmos3_robot.eval.judge_calibration) and store it in the checkpoint's metadata.
Usage: .venv/bin/python scripts/calibrate_judge.py CKPT [--out CKPT] [--seed 7000] [--episodes 6]"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from cosmos3_robot.backends.mot import MoTBackend
from cosmos3_robot.eval.fidelity import record_with_states
from cosmos3_robot.eval.judge_calibration import best_threshold, imagined_success_probs
from cosmos3_robot.model import WorldModel
from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--out", default=None, help="where to save (default: overwrite the checkpoint)")
    parser.add_argument("--seed", type=int, default=7000, help="first held-out seed (eval uses 0-49, training 1000-1719)")
    parser.add_argument("--episodes", type=int, default=6, help="per policy")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--policies", default="expert,expert-noise0.2,expert-noise0.4,random")
    parser.add_argument("--fp16", action="store_true", help="save float16 weights (the shipped format)")
    args = parser.parse_args()
    model = WorldModel.from_pretrained(args.checkpoint)
    backend = MoTBackend(model)
    coverage_threshold = 0.90  # PushTRealEnv's success definition
    real = PushTRealEnv(max_episode_steps=10_000, success_threshold=1.01)
    episodes, labels = [], []
    for name in args.policies.split(","):
        for s in range(args.seed, args.seed + args.episodes):
            ep = record_with_states(real, make_pusht_policy(name, seed=s), s, args.steps)
            episodes.append(ep)
            labels.append(ep["rewards"] >= coverage_threshold)  # PushT's reward is the coverage after the action
    labels = np.concatenate(labels)
    probs = imagined_success_probs(backend, episodes)
    res = best_threshold(probs, labels)
    print(f"{len(labels)} held-out transitions, {labels.sum()} reach coverage >= {coverage_threshold}")
    print("| threshold | F1 | TPR | FPR |\n|---|---|---|---|")
    for t, f1, tpr, fpr in res["table"][::5]:
        print(f"| {t:.2f} | {f1:.3f} | {tpr:.3f} | {fpr:.4f} |")
    print(f"chosen threshold {res['threshold']:.2f} (F1 {res['f1']:.3f}, TPR {res['tpr']:.3f}, FPR {res['fpr']:.4f});"
          f" was {backend.success_threshold}")
    model.metadata["success_threshold"] = res["threshold"]
    model.metadata["judge_calibration"] = {k: v for k, v in res.items() if k != "table"} | {
        "held_out_seeds": [args.seed, args.seed + args.episodes - 1], "policies": args.policies,
        "transitions": int(len(labels)), "coverage_threshold": coverage_threshold}
    model.save_pretrained(args.out or args.checkpoint, dtype=torch.float16 if args.fp16 else None)


if __name__ == "__main__":
    main()
