"""A learned renderer that draws each frame of a pushed rigid body and a pusher from their state alone,
as a field over the image: every pixel's colour is a small MLP of where that pixel lies in the
workspace, in the body's own frame and relative to the pusher.

The conv state renderer (`WorldModel.render_state`) draws through the frame tokenizer's latent grid and
decoder, which blur the T where the pusher touches it: the T's pose read back from its frames is off by
1.7 units / 1.6 degrees (median) and by up to 7 degrees at some poses, enough for the vision-based expert
to push at a contact the model's own T does not have and loop there. Here the body frame enters per
pixel, so the body's shape is learned once and drawn at any pose with the same sharpness; the pusher and
the static scene (goal, walls) are learned the same way. The field is trained (`fit_field_renderer`) on
(frame, state) pairs with the state perceived from the frames, never on simulator internals.

Units: pixel, pusher and body positions in workspace units (the image spans [0, workspace]).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .pose_dynamics import to_body
from .renderer import _update, one_cycle


class FieldRenderer(nn.Module):
    """(pusher (b, 2), body pose (b, 3), pixel positions (P, 2)) -> colours (b, P, 3) in [0, 1]."""

    def __init__(self, width: int = 64, layers: int = 3, freqs: int = 5, workspace: float = 512.0,
                 body_scale: float = 60.0, pusher_scale: float = 30.0):
        super().__init__()
        self.freqs, self.workspace = int(freqs), float(workspace)
        self.body_scale, self.pusher_scale = float(body_scale), float(pusher_scale)
        self.register_buffer("bands", (2.0 ** torch.arange(self.freqs)) * torch.pi, persistent=False)
        blocks, d = [], 7 + 8 * self.freqs
        for _ in range(layers):
            blocks += [nn.Linear(d, width), nn.SiLU()]
            d = width
        self.net = nn.Sequential(*blocks, nn.Linear(d, 3))

    def _fourier(self, x: torch.Tensor) -> torch.Tensor:
        angles = x[..., None] * self.bands  # (..., k, f)
        return torch.cat([torch.sin(angles), torch.cos(angles)], -1).flatten(-2)

    def forward(self, agent: torch.Tensor, pose: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        b = len(pose)
        p = pixels.expand(b, *pixels.shape[-2:]) if pixels.dim() == 2 else pixels  # (b, P, 2)
        place = p / (self.workspace / 2) - 1
        body = to_body(p, pose[:, None, :].expand(-1, p.shape[1], -1)) / self.body_scale
        rel = (p - agent[:, None, :]) / self.pusher_scale
        x = torch.cat([place, body, rel, rel.norm(dim=-1, keepdim=True),
                       self._fourier(place), self._fourier(body / 2)], -1)
        return torch.sigmoid(self.net(x))

    def grid(self, size: int) -> torch.Tensor:
        """Pixel centres (size*size, 2) of a size x size image, (x, y) = (column, row), in workspace units."""
        c = (torch.arange(size, dtype=torch.float32) + 0.5) * (self.workspace / size) - 0.5
        ys, xs = torch.meshgrid(c, c, indexing="ij")
        return torch.stack([xs.flatten(), ys.flatten()], -1)

    @torch.no_grad()
    def render(self, agent: torch.Tensor, pose: torch.Tensor, size: int, chunk: int = 16) -> np.ndarray:
        """Frames (b, size, size, 3) uint8 of the states (agent (b, 2), pose (b, 3))."""
        pixels = self.grid(size)
        out = [self(agent[i : i + chunk].float(), pose[i : i + chunk].float(), pixels)
               for i in range(0, len(pose), chunk)]
        img = torch.cat(out).reshape(len(pose), size, size, 3)
        return (img * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def fit_field_renderer(field: FieldRenderer, frames: np.ndarray, agents: np.ndarray, poses: np.ndarray,
                       steps: int = 4000, batch: int = 32, pixels: int = 1024, lr: float = 3e-3,
                       object_share: float = 0.5, seed: int = 0, progress: bool = True, log=None) -> dict:
    """Train `field` on frames (N, H, W, 3) uint8 of states agents (N, 2) / poses (N, 3): each step draws
    `batch` frames and `pixels` pixels of each, `object_share` of them from coloured pixels (the pusher,
    the T and the goal) and the rest anywhere; MSE on the colour; one-cycle AdamW. Deterministic for a
    seed. Returns final metrics."""
    gen = torch.Generator().manual_seed(seed)
    n, size = len(frames), frames.shape[1]
    if len(agents) != n or len(poses) != n:
        raise ValueError(f"{n} frames but {len(agents)} agent positions and {len(poses)} poses; need one each")
    colours = torch.from_numpy(np.asarray(frames, np.uint8).reshape(n, size * size, 3))
    spread = colours.amax(-1).int() - colours.amin(-1).int()
    coloured = spread > 25  # grey/white pixels have equal channels
    grid = field.grid(size)
    agents_t = torch.as_tensor(np.asarray(agents), dtype=torch.float32)
    poses_t = torch.as_tensor(np.asarray(poses), dtype=torch.float32)
    opt = torch.optim.AdamW(field.parameters(), lr / 10, weight_decay=0.0)
    sched = one_cycle(opt, lr, steps)
    n_obj = int(pixels * object_share)
    field.train()
    loss = torch.zeros(())
    bar = tqdm(range(steps), desc="field renderer", disable=not progress)
    for step in bar:
        idx = torch.randint(n, (batch,), generator=gen)
        anywhere = torch.randint(size * size, (batch, pixels - n_obj), generator=gen)
        # coloured pixels: sample by weight (frames without any fall back to uniform)
        w = coloured[idx].float() + 1e-6
        obj = torch.multinomial(w, n_obj, replacement=True, generator=gen)
        pix = torch.cat([anywhere, obj], 1)
        target = torch.gather(colours[idx], 1, pix[..., None].expand(-1, -1, 3)).float() / 255
        pred = field(agents_t[idx], poses_t[idx], grid[pix])
        loss = ((pred - target) ** 2).mean()
        _update(opt, sched, loss, step, steps, bar, log, "field_renderer", "loss")
    field.eval()
    return {"loss": float(loss.detach()), "steps": steps, "frames": n}
