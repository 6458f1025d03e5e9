"""Train a PushT state renderer (world state -> frame), and write a structured checkpoint around it.

`--teacher real` (the default, from scratch): the targets are real gym-pusht frames, those of a recorded
dataset (`scripts/collect_pusht.sh`) plus frames of uniformly random states (the pusher anywhere it can
reach, the T anywhere inside the walls at any angle); each frame's world state is perceived from the frame
itself (`vision.block_pose_features`) and the pusher's recorded position, as the learned env perceives its
first frames, and the state normalizer is fit to the dataset. The checkpoint's dynamics is an untrained
Generator tower, for `cosmos3-robot train-dynamics --init` to train (`cosmos3-robot train-sim --task pusht`,
`recipe.train_sim`). Run as `python scripts/train_pusht_renderer.py ...` or `python -m
cosmos3_robot.tasks.pusht.renderer_train ...`.

`--teacher CHECKPOINT` distills that checkpoint's renderer into a student on random states it draws, and
keeps its dynamics: the shipped `pusht_fast` came from `--teacher pusht_small --frames 24000 --steps 10000`
(14 min on 2 CPU cores; docs/pusht_fast_losses.jsonl).

`--kind sprite` (the default; the shipped pusht_tower's renderer): a learned background and one learned RGBA
sprite per entity (pusher, T) composited by the state (`model.sprite_renderer`), 4,000 steps. `--kind conv`:
a narrow conv head and decoder (pusht_fast's renderer), 10,000 steps. Both are fit in pixel space with the
pixels that differ from the background weighted 5x."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from cosmos3_robot.backends import load_backend
from cosmos3_robot.model import SpriteRenderer, StateRenderer
from cosmos3_robot.embodiments import Normalizer, load_spec
from cosmos3_robot.model import StateRendererConfig
from cosmos3_robot.model.entity_tower import EntityTower
from cosmos3_robot.tasks.pusht.real import random_pusht_frames
from cosmos3_robot.train.renderers import fit_sprites
from cosmos3_robot.tasks.pusht.structured import build_backend, sprite_config, tower_config
from cosmos3_robot.tasks.pusht.vision import block_pose_features, pose_to_features
from cosmos3_robot.train import JsonlLogger, fit, warmup_cosine


def random_worlds(n: int, state_norm, rng) -> torch.Tensor:
    agent = rng.uniform(20, 492, (n, 2))
    pose = np.column_stack([rng.uniform(70, 440, (n, 2)), rng.uniform(-np.pi, np.pi, n)])
    return torch.from_numpy(np.concatenate([state_norm.normalize(agent), pose_to_features(pose)], 1).astype(np.float32))


def real_targets(dataset: str, frames: int, random_frames: int, rng) -> tuple[torch.Tensor, torch.Tensor, Normalizer]:
    """Perceived world states (N, 6), real frames (N, 3, 96, 96) uint8 and the dataset's state normalizer."""
    from cosmos3_robot.datasets import load_episodes

    episodes = load_episodes(dataset)
    spec = load_spec("pusht")
    key = spec.cameras[0].key
    agents = np.concatenate([np.asarray(ep["state"])[:, :2] for ep in episodes])
    norm = Normalizer.fit(agents.astype(np.float64), "min_max", feature="observation.state")
    pick = rng.choice(len(agents), min(frames, len(agents)), replace=False)
    if key not in episodes[0]["frames"] and len(episodes[0]["frames"]) == 1:
        key = next(iter(episodes[0]["frames"]))  # a dataset recorded before the camera took lerobot/pusht's key
    images = np.concatenate([ep["frames"][key] for ep in episodes])[pick]
    agents = agents[pick]
    if random_frames:
        extra, extra_agents = random_pusht_frames(random_frames, int(rng.integers(2**31)))
        images, agents = np.concatenate([images, extra]), np.concatenate([agents, extra_agents])
    states = np.concatenate([norm.normalize(agents.astype(np.float64)), block_pose_features(images)], 1)
    return (torch.from_numpy(states.astype(np.float32)), torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            norm)


def fit_conv(student, states, targets, args, stage: str) -> dict:
    opt = torch.optim.AdamW(student.parameters(), args.lr, weight_decay=0.0)
    sched = warmup_cosine(opt, args.steps, warmup=200)
    gen = torch.Generator().manual_seed(args.seed)

    def loss_fn(step):
        idx = torch.randint(len(states), (args.batch,), generator=gen)
        target = targets[idx].float() / 255
        weight = 1 + 4 * (target.amax(1, keepdim=True) - target.amin(1, keepdim=True) > 0.1).float()
        return (((student(states[idx]) - target) ** 2) * weight).mean()

    student.train()
    last = fit(loss_fn, opt, args.steps, sched=sched, stage=stage, log=JsonlLogger(args.log))
    student.eval()
    return last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher", default="real", help="real (gym-pusht frames) or a checkpoint to distill")
    parser.add_argument("--dataset", default="outputs/pusht_clean", help="--teacher real: the recorded episodes")
    parser.add_argument("--random-frames", type=int, default=6000, help="--teacher real: frames of random states")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=24000, help="teacher frames drawn once / dataset frames used")
    parser.add_argument("--kind", default="sprite", choices=["sprite", "conv"])
    parser.add_argument("--steps", type=int, default=None, help="default 4000 (sprite) or 10000 (conv)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="default 1e-2 (sprite) or 2e-3 (conv)")
    parser.add_argument("--sprite-size", type=int, default=32, help="--kind sprite: texels per sprite side")
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--ae-widths", default="12,24,32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--legacy-loss", action="store_true",
                        help="--kind sprite: the loss the shipped renderer was fit with (train.renderers.fit_sprites)")
    parser.add_argument("--log", default="outputs/pusht_renderer_losses.jsonl")
    args = parser.parse_args(argv)
    sprite = args.kind == "sprite"
    args.steps = args.steps or (4000 if sprite else 10000)
    args.lr = args.lr or (1e-2 if sprite else 2e-3)
    rng = np.random.default_rng(args.seed)
    ae_widths = tuple(int(w) for w in args.ae_widths.split(","))
    if args.teacher == "real":
        teacher = None
        states, targets, state_norm = real_targets(args.dataset, args.frames, args.random_frames, rng)
        cfg = StateRendererConfig("point:0,pose:2", image_size=96, ae_widths=ae_widths, width=args.width,
                                  layers=args.layers)
    else:
        teacher = load_backend(args.teacher)
        world = teacher.task
        states = random_worlds(args.frames, world.state_norm, rng)
        with torch.no_grad():
            targets = torch.cat([(world.renderer(states[i : i + 256]) * 255).round().to(torch.uint8)
                                 for i in range(0, len(states), 256)])
        cfg = replace(world.renderer.cfg, width=args.width, layers=args.layers, ae_widths=ae_widths)
    torch.manual_seed(args.seed)
    if sprite:
        student = SpriteRenderer(sprite_config(sprite_size=args.sprite_size))
        last = fit_sprites(student, states, targets, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                           log=JsonlLogger(args.log), legacy=args.legacy_loss)
    else:
        student = StateRenderer(cfg)
        last = fit_conv(student, states, targets, args, "renderer" if teacher is None else "distill")
    record = {"teacher": args.teacher, "kind": args.kind, "frames": len(states), "steps": args.steps,
              "seed": args.seed, "loss": last["loss"]}
    if teacher is None:
        spec = load_spec("pusht")
        record |= {"dataset": args.dataset, "random_frames": args.random_frames}
        # the dynamics is a placeholder until train-dynamics trains it; success as in PushTRealEnv (0.90)
        backend = build_backend(student, EntityTower(tower_config(spec)), state_norm.to_dict(), spec, 2, 0.9,
                                {"renderer": record})
    else:
        backend = build_backend(student, world.dynamics, world.config["state_normalizer"], teacher.spec,
                                teacher.history, teacher.success_threshold,
                                {**teacher.provenance, "renderer_distilled": record})
    backend.save(args.out)
    print(f"renderer ({sum(p.numel() for p in student.parameters()) / 1e6:.2f} M parameters, "
          f"loss {last['loss']:.5f}) -> {args.out}")


if __name__ == "__main__":
    main()
