"""The conv frame head as a renderer: frame latents drawn from the (perceived) state alone.

With learned state dynamics (the structured backend) the learned simulator's state comes from them, and
the frame only has to show it: the pusher and the T where the state puts them, on the fixed scene. The
head then reads only the state's geometry planes (`WorldModel.render_state`); trained on the dataset's
(state, frame latent) pairs it draws every frame afresh, so a long closed-loop rollout neither blurs
nor fades. Runs on any torch device (the shipped head was trained on a GPU, README)."""

from __future__ import annotations

import numpy as np
import torch

from ..model.keypoint_renderer import KeypointRenderer
from ..model.sprite_renderer import SpriteRenderer
from .fit import fit
from .schedule import one_cycle, warmup_cosine


@torch.no_grad()
def render_pairs(model, episodes: list[dict], normalizers, perceived: str, camera_key: str,
                 features: list[np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Every frame of `episodes` -> {"state": (N, state_dim) padded normalized state with the perceived
    state, "latents": (N, c, h, w) the frame tokenizer's latents}; `features`: the episodes' already
    perceived states (None: perceive them here)."""
    from ..embodiments import pad_action
    from ..embodiments.perception import perceive
    from ..model.frame_tokenizer import resize_frames

    states, latents = [], []
    for k, ep in enumerate(episodes):
        frames = ep["frames"][camera_key]
        seen = perceive(perceived, frames) if features is None else features[k]
        small = torch.from_numpy(resize_frames(frames, model.cfg.image_size)).permute(0, 3, 1, 2)
        latents.append(torch.cat([model.frame_tokenizer.encode(small[i : i + 256]) for i in range(0, len(small), 256)]))
        s = np.concatenate([normalizers["observation.state"].normalize(ep["state"]), seen], 1)
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

    def loss_fn(step):
        idx = torch.randint(n, (min(batch, n),), generator=gen).to(device)
        noise = state_noise * torch.randn(len(idx), states.shape[1], generator=gen).to(device)
        pred = model.render_state(states[idx] + noise)[:, 0]
        return {"loss": ((pred - latents[idx]) ** 2).mean()}

    last = fit(loss_fn, opt, steps, sched=sched, stage="renderer", log=log, progress=progress)
    head.eval()
    model.to("cpu")
    return {"mse": last.get("loss", float("nan")), "steps": steps, "pairs": n}


def fit_renderer_pixels(model, frames: np.ndarray, states: torch.Tensor, steps: int = 3000, batch: int = 128,
                        lr: float = 5e-4, colour_weight: float = 4.0, recon_weight: float = 1.0, seed: int = 0,
                        device: str = "cpu", progress: bool = True, log=None) -> dict:
    """Fine-tune the renderer head and the frame tokenizer's decoder together in pixel space:
    decode(render_state(state)) against the real frame (N, H, W, 3) uint8 at the model's image size, with
    coloured (non-grey) pixels weighted `1 + colour_weight` (the pusher, the T and the goal are what a policy
    reads), plus `recon_weight` x the tokenizer's own reconstruction loss (the encoder stays frozen), so the
    decoder still decodes real frames. A latent-space fit leaves the T's outline as blurred as the
    tokenizer's decoder draws it; this sharpens it (README)."""
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    tok = model.frame_tokenizer
    params = list(model.frame_conv.parameters()) + list(tok.decoder.parameters())
    opt = torch.optim.AdamW(params, lr, weight_decay=0.0)
    sched = one_cycle(opt, lr, steps)
    x_all = torch.from_numpy(np.asarray(frames, np.uint8)).permute(0, 3, 1, 2)
    states = states.to(device)
    n = len(x_all)
    model.frame_conv.train()
    tok.decoder.train()

    def loss_fn(step):
        idx = torch.randint(n, (min(batch, n),), generator=gen)
        target = x_all[idx].to(device).float().div(255)
        weight = 1 + colour_weight * (target.amax(1, keepdim=True) - target.amin(1, keepdim=True) > 0.1).float()
        pred = tok.decode(model.render_state(states[idx.to(device)])[:, 0])
        loss = (((pred - target) ** 2) * weight).mean()
        if recon_weight:
            with torch.no_grad():
                z = tok.encode(target)
            loss = loss + recon_weight * (((tok.decode(z) - target) ** 2) * weight).mean()
        return loss

    last = fit(loss_fn, opt, steps, sched=sched, stage="renderer_pixels", log=log, progress=progress)
    model.frame_conv.eval()
    tok.decoder.eval()
    model.to("cpu")
    return {"loss": last.get("loss", float("nan")), "steps": steps, "frames": n}


def sprite_loss_weight(target: torch.Tensor, background_logits: torch.Tensor, legacy: bool) -> torch.Tensor:
    """Per-pixel weight of `fit_sprites`' loss: 5 where a frame (B, 3, H, W) in [0, 1] differs from the
    background's colours by more than 0.1, else 1; `legacy`: compared with the logits instead, as the shipped
    renderer's fit did."""
    background = background_logits if legacy else torch.sigmoid(background_logits)
    return 1 + 4 * ((target - background).abs().amax(1, keepdim=True) > 0.1).float()


def fit_sprites(renderer: SpriteRenderer, states: torch.Tensor, frames: torch.Tensor, steps: int = 3000,
                batch: int = 64, lr: float = 1e-2, binary: float = 1e-3, seed: int = 0, log=None,
                legacy: bool = False) -> dict:
    """Fit `renderer` to (states (N, k), frames (N, 3, H, W) uint8): mean squared error in pixel space, pixels
    that differ from the background by more than 0.1 counting 5x (the entities are a small share of the frame).

    `legacy=True` is the loss the shipped sprite renderer was fit with, kept so its recipe rebuilds it: it
    compared the frames, in [0, 1], with the background's logits rather than its colours, so nearly every pixel
    got 5x and the loss was in effect plain MSE x 5. The corrected weighting has not been refit and evaluated."""

    renderer.init_from_frames(frames)
    opt = torch.optim.Adam(renderer.parameters(), lr)
    sched = warmup_cosine(opt, steps, warmup=100)
    gen = torch.Generator().manual_seed(seed)
    background = renderer.background.detach().clone()  # logits

    def loss_fn(step):
        idx = torch.randint(len(states), (batch,), generator=gen)
        target = frames[idx].float() / 255
        weight = sprite_loss_weight(target, background, legacy)
        pixels = (((renderer(states[idx]) - target) ** 2) * weight).mean()
        # over a white background a faint dark sprite looks like an opaque pale one; only overlaps tell them
        # apart, and they are rare: nudge alpha to 0 or 1
        alpha = torch.sigmoid(renderer.alpha)
        return {"loss": pixels + binary * (alpha * (1 - alpha)).mean(), "pixels": pixels}

    renderer.train()
    last = fit(loss_fn, opt, steps, sched=sched, stage="sprites", log=log)
    renderer.eval()
    return {"steps": steps, "seed": seed, "loss": last["pixels"], "legacy_loss": legacy}



def fit_keypoint_renderer(renderer: KeypointRenderer, points: torch.Tensor, camera: torch.Tensor,
                          frames: torch.Tensor, steps: int = 3000, batch: int = 32, lr: float = 2e-3, seed: int = 0,
                          progress: bool = True, log=None, focus: float = 8.0, emphasis=None) -> dict:
    """Fit on keypoints (N, P, 3), camera indices (N,) and frames (N, H, W, 3) uint8. The loss is the pixel
    MSE, weighted `focus` times more where a frame differs from its camera's median frame (the arm and the
    objects, a small part of each frame, would otherwise be lost in the background's error). `emphasis`, the
    task's: frames (B, H, W, 3) uint8 -> (B, H, W) extra weights (e.g. on small objects a policy locates by
    colour, a few pixels each). Deterministic for a seed."""

    gen = torch.Generator().manual_seed(seed)
    cams = int(renderer.cfg.cameras)
    background = torch.stack([frames[camera == c][:512].float().median(0).values if (camera == c).any()
                              else torch.zeros(frames.shape[1:]) for c in range(cams)])  # (C, H, W, 3)
    opt = torch.optim.AdamW(renderer.parameters(), lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, steps), pct_start=0.1)
    renderer.train()

    def loss_fn(step):
        idx = torch.randint(0, len(points), (batch,), generator=gen)
        picked = frames[idx]
        target = picked.float()
        cam = camera[idx]
        w = 1 + focus * ((target - background[cam]).abs().amax(-1, keepdim=True) > 24).float()
        if emphasis is not None:
            w = w + torch.as_tensor(emphasis(picked.numpy()), dtype=torch.float32)[..., None]
        pred = renderer(points[idx], cam).permute(0, 2, 3, 1) * 255
        loss = (w * (pred - target) ** 2).mean() / 255**2
        return {"loss": loss}

    last = fit(loss_fn, opt, steps, sched=sched, stage="keypoint_renderer", log=log, progress=progress)
    renderer.eval()
    return {"steps": steps, "batch": batch, "lr": lr, "seed": seed, **({"emphasis": True} if emphasis else {}), **last}

