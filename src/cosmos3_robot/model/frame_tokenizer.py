"""Frame tokenizer: a small convolutional autoencoder (image -> latent grid -> image), trained on
its own before the world model. Latents are standardized per channel with statistics measured
after training, so the flow model sees roughly unit-variance targets."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from .config import ModelConfig


def _groups(ch: int) -> int:
    return next(g for g in (8, 4, 2, 1) if ch % g == 0)


def to_float_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) in [0, 255] or float in [0, 1] -> float in [0, 1]."""
    return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3): camera resolution to the model's (area resampling
    down, bilinear up); a no-op when they match."""
    if frames.shape[1:3] == (size, size):
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


class FrameAutoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths = cfg.ae_widths
        enc: list[nn.Module] = []
        prev = cfg.image_channels
        for w in widths:  # each stage halves the resolution (no full-resolution conv: CPU cost)
            enc += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.GroupNorm(_groups(w), w), nn.SiLU(),
                    nn.Conv2d(w, w, 3, padding=1), nn.SiLU()]
            prev = w
        enc.append(nn.Conv2d(prev, cfg.latent_channels, 1))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, widths[-1], 3, padding=1), nn.SiLU()]
        rev = list(reversed(widths))
        for w, nxt in zip(rev, rev[1:]):
            dec += [nn.ConvTranspose2d(w, nxt, 4, stride=2, padding=1), nn.GroupNorm(_groups(nxt), nxt), nn.SiLU(),
                    nn.Conv2d(nxt, nxt, 3, padding=1), nn.SiLU()]
        dec.append(nn.ConvTranspose2d(widths[0], cfg.image_channels, 4, stride=2, padding=1))
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    def _flat(self, x: torch.Tensor):
        lead = x.shape[:-3]
        return x.reshape(-1, *x.shape[-3:]), lead

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) -> standardized latents (..., c, h, w)."""
        x, lead = self._flat(to_float_frames(frames) * 2 - 1)
        z = self.encoder(x)
        z = (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., c, h, w) standardized latents -> frames (..., 3, H, W) float in [0, 1]."""
        z, lead = self._flat(latents)
        z = z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        x = (self.decoder(z).clamp(-1, 1) + 1) / 2
        return x.reshape(*lead, *x.shape[1:])

    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(frames))

    @torch.no_grad()
    def calibrate(self, frames: torch.Tensor, batch_size: int = 256) -> None:
        """Measure per-channel latent mean/std on `frames` (N, 3, H, W) and store them."""
        self.latent_mean.zero_()
        self.latent_std.fill_(1.0)
        zs = torch.cat([self.encode(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)])
        self.latent_mean.copy_(zs.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(zs.std(dim=(0, 2, 3)).clamp_min(1e-4))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB) of images in [0, 1], per leading item."""
    mse = ((to_float_frames(a) - to_float_frames(b)) ** 2).flatten(start_dim=-3).mean(-1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def foreground(x: torch.Tensor, tol: float = 0.1) -> torch.Tensor:
    """(b, 3, H, W) in [0, 1] -> (b, 1, H, W) float mask of pixels farther than `tol` (any channel) from
    the frame's background colour, taken as its per-channel median."""
    bg = x.flatten(2).median(dim=2).values[:, :, None, None]
    return ((x - bg).abs().amax(dim=1, keepdim=True) > tol).float()
