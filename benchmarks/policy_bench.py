"""The world model's policy head: latency per action chunk on this CPU, against chunk length and flow
(denoising) steps. A structured checkpoint with a policy head (`--checkpoint pusht_tower`, the Generator tower
in policy mode on entity tokens) is timed per call: the frame's perception plus one sampled chunk of the
head's length, of which `chunk` actions are played; with `--plans` > 1, that many chunks are sampled and each is
rolled through the checkpoint's own dynamics before the best is kept (`world-model#plan=K`). Without
--checkpoint, the MoT policy head on frames is timed: latency does not depend on what the weights learned,
so the model is the `small` preset (the size `cosmos3-robot train` trains for PushT) with fresh weights.
Usage: .venv/bin/python benchmarks/policy_bench.py [--checkpoint CKPT] [--chunks 1,4,8,16] [--steps 1,2,4]
       [--plans 1,8]"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def fresh_model(preset: str):
    from cosmos3_robot.embodiments import Normalizer
    from cosmos3_robot.model import WorldModel, get_config

    torch.manual_seed(0)
    model = WorldModel(get_config(preset))
    samples = np.random.default_rng(0).uniform(0, 512, (100, 2))
    model.metadata = {"embodiment": "pusht", "context": 2, "success_threshold": 0.9, "normalizers": {
        k: Normalizer.fit(samples, "min_max", feature=k).to_dict() for k in ("action", "observation.state")}}
    return model.eval()


def main():
    from cosmos3_robot.policies import WorldModelPolicy
    from cosmos3_robot.tasks.pusht import PushTRealEnv

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--chunks", default="1,4,8,16")
    parser.add_argument("--steps", default="1,2,4")
    parser.add_argument("--plans", default="1", help="structured checkpoints: chunks sampled and imagined per call")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from cosmos3_robot.backends.registry import backend_name
    from cosmos3_robot.policies import StructuredPolicy

    structured = args.checkpoint is not None and backend_name(args.checkpoint) == "structured"
    model = args.checkpoint or fresh_model(args.preset)
    obs, _ = PushTRealEnv().reset(seed=0)
    plans = [int(k) for k in args.plans.split(",")] if structured else [1]
    print("| chunk | flow steps | candidates | ms per chunk | ms per action |\n|---|---|---|---|---|")
    for chunk, steps, plan in ((int(c), int(s), k) for c in args.chunks.split(",") for s in args.steps.split(",")
                               for k in plans):
        if structured:
            policy = StructuredPolicy(args.checkpoint, n_action_steps=chunk, flow_steps=steps, seed=0,
                                      candidates=plan)
        else:
            policy = WorldModelPolicy(model, chunk=chunk, sample_steps=steps, seed=0)
        policy.select_action(obs)  # warm-up (the first call also fills the context)
        times = []
        for _ in range(args.repeats):
            policy._queue.clear()  # the next call samples a new chunk
            t0 = time.perf_counter()
            policy.select_action(obs)
            times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times))
        print(f"| {chunk} | {steps} | {plan} | {ms:.1f} | {ms / chunk:.2f} |")


if __name__ == "__main__":
    main()
