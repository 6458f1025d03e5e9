"""Is the T's one-step motion predictable from the perceived state? For a checkpoint trained with
`--perceive-state pusht_block_pose`: on held-out episodes (every 8th), the error of the T's predicted
one-step change (position in workspace units / angle in degrees) on steps where the T moves (> 2 units),
turns (> ~1 degree) and rests, for: no change; an MLP on (the two context states, the action) trained
on the other episodes; the world model's own one-step state prediction, sampled as the learned env does.
Measured on outputs/ps5 (README): the MLP is 23% better than no change on moving steps; the world model
is worse than no change there and moves the T by 4.5 units on steps where it rests.
Usage: .venv/bin/python benchmarks/perceived_dynamics.py CHECKPOINT DATASET [--steps 6000]"""

from __future__ import annotations

import argparse
import time

import torch

from cosmos3_robot.datasets import dataset_normalizers, load_episodes
from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.model import WorldModel
from cosmos3_robot.model.training import LatentData

p = argparse.ArgumentParser()
p.add_argument("checkpoint")
p.add_argument("dataset")
p.add_argument("--steps", type=int, default=6000)
args = p.parse_args()
torch.manual_seed(0)
m = WorldModel.from_pretrained(args.checkpoint).eval()
spec, eps = load_spec("pusht"), load_episodes(args.dataset)
norm = dataset_normalizers(args.dataset, spec)


def windows(episodes):
    """LatentData over `episodes` and its (two states, action) -> state change pairs."""
    data = LatentData(m, episodes, spec, norm, 2, spec.cameras[0].key, "pusht_block_pose")
    i = data.valid
    prev = torch.maximum(i - 1, data.start[i])
    x = torch.cat([data.state[i, :6], data.state[prev, :6], data.action[i, :2]], 1)
    return data, x, data.state[i + 1, :6] - data.state[i, :6]


_, Xtr, Ytr = windows([e for k, e in enumerate(eps) if k % 8 != 7])
data, Xte, Yte = windows([e for k, e in enumerate(eps) if k % 8 == 7])  # held out
net = torch.nn.Sequential(torch.nn.Linear(14, 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(),
                          torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 6))
opt = torch.optim.AdamW(net.parameters(), 1e-3); g = torch.Generator().manual_seed(0); t0 = time.time()
for step in range(args.steps):
    j = torch.randint(len(Xtr), (256,), generator=g)
    loss = ((net(Xtr[j]) - Ytr[j]) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
with torch.no_grad():
    mlp = net(Xte)
    # the world model's one-step state prediction on the same held-out windows (as the env samples it)
    idx = data.valid; wm = []
    for k in range(0, len(idx), 512):
        w = idx[k:k + 512]; st = data.start[w][:, None]
        ctx = torch.maximum(w[:, None] + torch.arange(-1, 1)[None], st)
        b = len(w)
        cache = m.encode_prefix(data.text_ids[None].repeat(b, 1), data.latents[ctx], data.state[ctx], torch.zeros(b, dtype=torch.long))
        out = m.sample(cache, 1, 1, data.action_mask[None].repeat(b, 1), data.state_mask[None].repeat(b, 1),
                       actions=data.action[w][:, None], generator=g, noise_scale=1.0)
        wm.append(out["state"][:, 0, :6] - data.state[w, :6])
    wm = torch.cat(wm)
turning = Yte[:, 4:6].norm(dim=1) > 0.02  # the T turns > ~1.1 degrees this step
moving = Yte[:, 2:4].norm(dim=1) > 2 / 256


def err(pred, mask):
    """Mean error of the T's change on `mask`: position (workspace units), angle (degrees, from cos/sin)."""
    d = (pred - Yte)[mask]
    return d[:, 2:4].norm(dim=1).mean().item() * 256, d[:, 4:6].norm(dim=1).mean().item() * 57.3


print(f"held-out windows {len(Yte)}, T moving {int(moving.sum())}, turning {int(turning.sum())}; MLP {time.time() - t0:.0f} s")
print("| predictor | T moving: units / degrees | T turning | T at rest |")
print("|---|---|---|---|")
for name, pred in (("no change", torch.zeros_like(Yte)), ("MLP (2 states + action)", mlp), ("world model", wm)):
    cells = [err(pred, mask) for mask in (moving, turning, ~moving)]
    print(f"| {name} | " + " | ".join(f"{u:.2f} / {deg:.2f}" for u, deg in cells) + " |")
