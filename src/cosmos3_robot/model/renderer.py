"""The conv frame head as a renderer: frame latents drawn from the (perceived) state alone.

With a pose dynamics head (`pose_dynamics.py`) the learned simulator's state comes from that head, and
the frame only has to show it: the pusher and the T where the state puts them, on the fixed scene. The
head then reads only the state's geometry planes (`WorldModel.render_state`); trained on the dataset's
(state, frame latent) pairs it draws every frame afresh, so a long closed-loop rollout neither blurs
nor fades. Runs on any torch device (the shipped head was trained on a GPU, README)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .schedule import warmup_cosine


@torch.no_grad()
def render_pairs(model, episodes: list[dict], normalizers, perceived: str, camera_key: str) -> dict[str, torch.Tensor]:
    """Every frame of `episodes` -> {"state": (N, state_dim) padded normalized state with the perceived
    state, "latents": (N, c, h, w) the frame tokenizer's latents}."""
    from ..embodiments import pad_action
    from ..embodiments.perception import perceive
    from .frame_tokenizer import resize_frames

    states, latents = [], []
    for ep in episodes:
        frames = ep["frames"][camera_key]
        small = torch.from_numpy(resize_frames(frames, model.cfg.image_size)).permute(0, 3, 1, 2)
        latents.append(torch.cat([model.frame_tokenizer.encode(small[i : i + 256]) for i in range(0, len(small), 256)]))
        s = np.concatenate([normalizers["observation.state"].normalize(ep["state"]), perceive(perceived, frames)], 1)
        states.append(torch.from_numpy(pad_action(s.astype(np.float32), model.cfg.state_dim)[0]))
    return {"state": torch.cat(states), "latents": torch.cat(latents)}


def fit_renderer(model, pairs: dict[str, torch.Tensor], steps: int = 3000, batch: int = 128, lr: float = 2e-3,
                 state_noise: float = 0.005, seed: int = 0, device: str = "cpu", progress: bool = True,
                 log=None) -> dict:
    """Train the conv frame head (`model.frame_conv`) so that `render_state(state)` reproduces the frame
    latents of `pairs`; everything else stays frozen. Deterministic for a seed on a given device."""
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    head = model.frame_conv
    params = list(head.parameters())
    opt = torch.optim.AdamW(params, lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps, warmup=200)
    states, latents = pairs["state"].to(device), pairs["latents"].to(device).float()
    n = len(states)
    head.train()
    loss = torch.zeros(())
    bar = tqdm(range(steps), desc="renderer", disable=not progress)
    for step in bar:
        idx = torch.randint(n, (min(batch, n),), generator=gen).to(device)
        noise = state_noise * torch.randn(len(idx), states.shape[1], generator=gen).to(device)
        pred = model.render_state(states[idx] + noise)[:, 0]
        loss = ((pred - latents[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            bar.set_postfix(mse=f"{loss.item():.4f}")
            if log is not None:
                log({"stage": "renderer", "step": step, "mse": loss.item()})
    head.eval()
    model.to("cpu")
    return {"mse": float(loss.detach()), "steps": steps, "pairs": n}
