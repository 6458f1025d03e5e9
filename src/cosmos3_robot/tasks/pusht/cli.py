"""PushT's own CLI commands (`TaskInfo.commands`): `train-policy` and `train-dynamics`, the recipe's steps that
`train-sim --task pusht` runs, with every option of each."""

from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    add_train_policy_parser(sub)
    add_train_dynamics_parser(sub)


def cmd_train_policy(args: argparse.Namespace) -> int:
    from ...backends.structured import export_graphs
    from .train import train_policy

    policies = args.policies.split(",") if args.policies else None
    backend = train_policy(args.init, args.dataset, args.out, policies=policies, chunk=args.chunk, epochs=args.epochs,
                           seed=args.seed, width=args.width, flow_steps=args.flow_steps,
                           n_action_steps=args.n_action_steps, candidates=args.candidates,
                           relabel_with=args.relabel_with, overwrite=args.overwrite)
    export_graphs(args.out)
    info = backend.provenance["policy"]
    print(f"trained the policy head on {info['samples']} states of {info['episodes']} episodes of {args.dataset} "
          f"(final loss {info['loss']:.4f}); checkpoint in {args.out}; run it as world-model:{args.out}")
    return 0


def cmd_train_dynamics(args: argparse.Namespace) -> int:
    from .train import train_dynamics

    backend = train_dynamics(args.init, args.dataset, args.out, width=args.width, epochs=args.epochs, seed=args.seed,
                             render_steps=args.render_steps, render_width=args.render_width,
                             render_layers=args.render_layers, render_batch=args.render_batch,
                             pixel_steps=args.pixel_steps, random_frames=args.random_frames, device=args.device,
                             overwrite=args.overwrite, dynamics=args.dynamics, lr=args.lr,
                             tower={k: v for k, v in (("layers", args.layers), ("samples", args.samples),
                                                      ("flow_steps", args.flow_steps)) if v is not None},
                             rest_every=args.rest_every, settle_every=args.settle_every)
    from ...backends.structured import export_graphs

    export_graphs(args.out)  # its first load under ONNX Runtime then needs no export
    info = backend.provenance["tower" if args.dynamics == "tower" else "pose_dynamics"]
    what = "Generator tower" if args.dynamics == "tower" else "pose dynamics MLP"
    print(f"trained the {what} on {info['transitions']} transitions of {args.dataset} "
          f"(final loss {info['loss']:.4f}); structured checkpoint in {args.out}")
    return 0


def add_train_policy_parser(sub) -> None:
    p = sub.add_parser("train-policy", help="PushT: train the policy head (the Generator tower in policy mode) of a "
                       "structured checkpoint on recorded episodes; its dynamics and renderer are kept")
    p.add_argument("--init", required=True, help="a structured PushT checkpoint, e.g. pusht_tower")
    p.add_argument("--dataset", required=True, help="a dataset directory, or several joined by commas")
    p.add_argument("--out", required=True)
    p.add_argument("--policies", default="expert", help="train on the successful episodes of these recorded "
                   "policies (comma-separated; empty: every successful episode)")
    p.add_argument("--relabel-with", default=None, help="a scripted policy (e.g. expert) whose answer to each "
                   "recorded observation replaces the recorded action; every episode is kept, failed ones too")
    p.add_argument("--chunk", type=int, default=16, help="actions predicted per call")
    p.add_argument("--flow-steps", type=int, default=4, help="Euler steps per chunk (default at run time)")
    p.add_argument("--n-action-steps", type=int, default=1,
                   help="actions played of each chunk before the next call (default at run time)")
    p.add_argument("--candidates", type=int, default=1, help="chunks sampled per call, the best kept by the reward "
                   "the checkpoint's dynamics imagines for each (default at run time; world-model#plan=K)")
    p.add_argument("--width", type=int, default=96, help="the tower's token width")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already at --out")
    p.set_defaults(func=cmd_train_policy)


def add_train_dynamics_parser(sub) -> None:
    p = sub.add_parser("train-dynamics", help="PushT: train the state dynamics (the Generator tower over entity "
                       "tokens, or the baseline pose MLP) and write a structured-backend checkpoint")
    p.add_argument("--init", required=True, help="a structured checkpoint (its renderer is kept; "
                   "scripts/train_pusht_renderer.py makes one), or a world model checkpoint with a perceived pose")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dynamics", default="tower", choices=["tower", "mlp"],
                   help="tower: the Generator tower over entity tokens; mlp: the baseline body-frame pose MLP")
    p.add_argument("--width", type=int, default=256, help="the tower's token width, or the MLP's width")
    p.add_argument("--layers", type=int, default=None, help="tower layers")
    p.add_argument("--samples", type=int, default=None, help="tower: samples per step (their spread: disagreement)")
    p.add_argument("--flow-steps", type=int, default=None, help="tower: Euler steps per sample")
    p.add_argument("--rest-every", type=int, default=10,
                   help="tower: add the exact held-still transition of every k-th recorded state (0: none)")
    p.add_argument("--settle-every", type=int, default=20,
                   help="tower: from every k-th recorded state, a pusher settling on a near target, run in "
                        "gym-pusht (0: none)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--render-steps", type=int, default=0,
                   help="> 0: retrain the conv frame head to draw frames from the state alone")
    p.add_argument("--render-width", type=int, default=None, help="conv head width of that renderer")
    p.add_argument("--render-layers", type=int, default=None, help="conv head layers of that renderer")
    p.add_argument("--render-batch", type=int, default=256)
    p.add_argument("--pixel-steps", type=int, default=0,
                   help="then fine-tune that renderer with the tokenizer's decoder in pixel space for this many steps")
    p.add_argument("--random-frames", type=int, default=0,
                   help="extra frames of random gym-pusht states for the pixel fine-tune")
    p.add_argument("--device", default="cpu", help="torch device for the renderer training (cuda on a GPU)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already at --out")
    p.set_defaults(func=cmd_train_dynamics)
