"""Distill the shipped PushT renderer into a smaller one (a faster learned env): random world states (the
pusher anywhere it can reach, the T anywhere inside the walls at any angle) drawn by the teacher are the
targets; the student (a narrower conv head and decoder) fits them in pixel space with coloured pixels
weighted as in `fit_renderer_pixels`. The pose head is kept. Writes a structured checkpoint.
The shipped `pusht_fast` checkpoint: `.venv/bin/python scripts/distill_pusht_renderer.py --out
src/cosmos3_robot/checkpoints/pusht_fast --steps 10000` (14 min on 2 CPU cores; docs/pusht_fast_losses.jsonl)."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from cosmos3_robot.backends import load_backend
from cosmos3_robot.model import StateRenderer
from cosmos3_robot.tasks.pusht.structured import build_backend
from cosmos3_robot.tasks.pusht.vision import pose_to_features
from cosmos3_robot.train import JsonlLogger, fit, warmup_cosine


def random_worlds(n: int, state_norm, rng) -> torch.Tensor:
    agent = rng.uniform(20, 492, (n, 2))
    pose = np.column_stack([rng.uniform(70, 440, (n, 2)), rng.uniform(-np.pi, np.pi, n)])
    return torch.from_numpy(np.concatenate([state_norm.normalize(agent), pose_to_features(pose)], 1).astype(np.float32))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher", default="pusht_small")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=24000, help="teacher frames drawn once")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--ae-widths", default="12,24,32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default="outputs/pusht_fast_losses.jsonl")
    args = parser.parse_args()
    teacher = load_backend(args.teacher)
    world = teacher.task
    rng = np.random.default_rng(args.seed)
    states = random_worlds(args.frames, world.state_norm, rng)
    with torch.no_grad():
        targets = torch.cat([(world.renderer(states[i : i + 256]) * 255).round().to(torch.uint8)
                             for i in range(0, len(states), 256)])
    torch.manual_seed(args.seed)
    cfg = replace(world.renderer.cfg, width=args.width, layers=args.layers,
                  ae_widths=tuple(int(w) for w in args.ae_widths.split(",")))
    student = StateRenderer(cfg)
    opt = torch.optim.AdamW(student.parameters(), args.lr, weight_decay=0.0)
    sched = warmup_cosine(opt, args.steps, warmup=200)
    gen = torch.Generator().manual_seed(args.seed)

    def loss_fn(step):
        idx = torch.randint(len(states), (args.batch,), generator=gen)
        target = targets[idx].float() / 255
        weight = 1 + 4 * (target.amax(1, keepdim=True) - target.amin(1, keepdim=True) > 0.1).float()
        return (((student(states[idx]) - target) ** 2) * weight).mean()

    student.train()
    last = fit(loss_fn, opt, args.steps, sched=sched, stage="distill", log=JsonlLogger(args.log))
    student.eval()
    provenance = {**teacher.provenance, "renderer_distilled": {"teacher": args.teacher, "frames": args.frames,
                                                               "steps": args.steps, "loss": last["loss"]}}
    backend = build_backend(student, world.dynamics, world.config["state_normalizer"], teacher.spec,
                            teacher.history, teacher.success_threshold, provenance)
    backend.save(args.out)
    print(f"distilled renderer ({sum(p.numel() for p in student.parameters()) / 1e6:.2f} M parameters, "
          f"loss {last['loss']:.5f}) -> {args.out}")


if __name__ == "__main__":
    main()
