"""Model benchmark: parameters, FLOPs per learned-env step, and env-step latency on this machine.

An env step of the learned simulator = append one context step to the KV cache, run
`sample_steps` Euler denoising passes over (1 future frame + state + 1 action), decode the frame.
Usage: .venv/bin/python benchmarks/model_bench.py [--presets tiny,small] [--context 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cosmos3_robot.model import WorldModel, get_config


def inputs(cfg, b, context, device="cpu"):
    n, c = cfg.latent_size, cfg.latent_channels
    mask = (torch.arange(cfg.action_dim, device=device) < 2)[None].repeat(b, 1)
    return dict(
        text=torch.zeros(b, cfg.max_text_len, dtype=torch.long, device=device),
        ctx=torch.randn(b, context, 1, c, n, n, device=device),
        state=torch.zeros(b, context, cfg.state_dim, device=device),
        new=torch.randn(b, 1, 1, c, n, n, device=device),
        new_state=torch.zeros(b, 1, cfg.state_dim, device=device),
        actions=torch.zeros(b, 1, cfg.action_dim, device=device),
        mask=mask,
        domain=torch.zeros(b, dtype=torch.long, device=device),
    )


@torch.no_grad()
def env_step(model, cache, x):
    """What the learned env does per step once its context cache exists."""
    cache = model.extend_prefix(cache, x["new"], x["new_state"])
    out = model.sample(cache, 1, 1, x["mask"], x["mask"], actions=x["actions"])
    return model.frame_tokenizer.decode(out["frames"][:, 0, 0])


def flops_per_env_step(model, cfg, context):
    x = inputs(cfg, 1, context, device=next(model.parameters()).device)
    with torch.no_grad():
        cache = model.encode_prefix(x["text"], x["ctx"], x["state"], x["domain"])
        with FlopCounterMode(display=False) as counter:
            env_step(model, cache, x)
    return counter.get_total_flops()


def latency_ms(model, cfg, b, context, repeats):
    x = inputs(cfg, b, context)
    with torch.no_grad():
        cache = model.encode_prefix(x["text"], x["ctx"], x["state"], x["domain"])
        env_step(model, cache, x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            env_step(model, cache, x)
    return (time.perf_counter() - t0) / repeats * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--context", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, context {args.context} steps\n")
    print(f"| preset | params | tokens/frame | GFLOP/env step | env step b=1 (ms) | env step b=32 (ms) | steps/s b=32 |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        cfg = get_config(preset)
        model = WorldModel(cfg).eval()
        params = sum(p.numel() for p in model.parameters())
        flops = flops_per_env_step(model, cfg, args.context)
        l1 = latency_ms(model, cfg, 1, args.context, args.repeats)
        l32 = latency_ms(model, cfg, 32, args.context, max(1, args.repeats // 2))
        print(f"| {preset} | {params / 1e6:.2f} M | {cfg.tokens_per_frame} | {flops / 1e9:.3f} | {l1:.1f} | {l32:.1f} |"
              f" {32 / l32 * 1000:.0f} |")
    cfg = get_config("nano")
    with torch.device("meta"):
        nano = WorldModel(cfg)
    params = sum(p.numel() for p in nano.parameters())
    flops = flops_per_env_step(nano, cfg, args.context)
    print(f"| nano (meta, counted only) | {params / 1e9:.2f} B | {cfg.tokens_per_frame} | {flops / 1e9:.0f} | - | - | - |")
    print("\nGFLOP/env step: one generated frame (cache extension + denoising passes + decode), from"
          " torch.utils.flop_counter (matmuls/convs/attention).")


if __name__ == "__main__":
    main()
