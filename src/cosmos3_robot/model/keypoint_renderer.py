"""A renderer that draws a camera frame from 3-D keypoints projected into it: the task projects its
entities' keypoints (a robot's link origins, an object's corners) through each camera's calibration; each
group of segments between keypoints becomes a plane on the pixel grid (how near each pixel is to the group's
nearest segment, and that segment's depth there); a conv net reads the planes, the pixel coordinates and the
camera's index and paints the frame. Projecting first is what a learned renderer of a 3-D scene needs to be
trained in minutes: the net only learns what a link or an object looks like where the geometry says it is
(as keypoint-conditioned image generators do; e.g. Siarohin et al. 2019, "First Order Motion Model")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .state_renderer import to_uint8
from ..errors import UserError


@dataclass(frozen=True)
class KeypointRendererConfig:
    groups: list  # per group, its segments [[i, j], ...] between keypoint indices ([i, i]: a point)
    cameras: int  # how many cameras the one net draws (their index is an input)
    height: int = 48  # output frame size; the planes and the net run at half of it
    width: int = 80
    channels: int = 32
    layers: int = 5
    sigma: float = 0.7  # plane width, in grid cells

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> KeypointRendererConfig:
        return cls(**d)

    def __post_init__(self):
        if self.height % 2 or self.width % 2:
            raise UserError(f"KeypointRendererConfig: height={self.height} and width={self.width} must be even")
        if not self.groups or any(len(g) == 0 for g in self.groups):
            raise UserError("KeypointRendererConfig.groups: give at least one group, each with a segment [i, j]")


class KeypointRenderer(nn.Module):
    """keypoints (N, P, 3) = (u, v in [-1, 1] across the frame, normalized depth) and camera index (N,)
    -> frames (N, 3, H, W) in [0, 1] (`forward`) or (N, H, W, 3) uint8 (`draw`)."""

    def __init__(self, cfg: KeypointRendererConfig):
        super().__init__()
        self.cfg = cfg
        seg = [(i, j, g) for g, group in enumerate(cfg.groups) for i, j in group]
        self.register_buffer("seg_a", torch.tensor([s[0] for s in seg]), persistent=False)
        self.register_buffer("seg_b", torch.tensor([s[1] for s in seg]), persistent=False)
        self._group_segments = [[k for k, s in enumerate(seg) if s[2] == g] for g in range(len(cfg.groups))]
        h, w = cfg.height // 2, cfg.width // 2
        ys, xs = (torch.arange(h) + 0.5) / h * 2 - 1, (torch.arange(w) + 0.5) / w * 2 - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (h, w, 2) as (u, v)
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("cell", torch.tensor([2.0 / w, 2.0 / h]), persistent=False)
        G, C = len(cfg.groups), cfg.channels
        layers = [nn.Conv2d(2 * G + 2 + cfg.cameras, C, 3, padding=1), nn.GELU()]
        for k in range(cfg.layers - 2):
            d = 1 + k % 2  # dilation 1, 2, 1, ...: a wider view for the same cost
            layers += [nn.Conv2d(C, C, 3, padding=d, dilation=d), nn.GELU()]
        layers += [nn.ConvTranspose2d(C, C // 2, 4, stride=2, padding=1), nn.GELU(), nn.Conv2d(C // 2, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def planes(self, points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """-> the net's input (N, 2G + 2 + cameras, h, w)."""
        N = points.shape[0]
        a, b = points[:, self.seg_a], points[:, self.seg_b]  # (N, S, 3)
        pa, pb = a[..., :2] / self.cell, b[..., :2] / self.cell  # in grid cells
        g = self.grid / self.cell
        gx, gy = g[..., 0], g[..., 1]  # (h, w)
        ax, ay = pa[..., 0, None, None], pa[..., 1, None, None]  # (N, S, 1, 1)
        abx, aby = (pb - pa)[..., 0, None, None], (pb - pa)[..., 1, None, None]
        rx, ry = gx - ax, gy - ay  # (N, S, h, w)
        t = ((rx * abx + ry * aby) / (abx * abx + aby * aby).clamp_min(1e-6)).clamp(0, 1)
        dx, dy = rx - t * abx, ry - t * aby
        d2 = dx * dx + dy * dy  # squared distance to the nearest point of each segment
        depth = a[..., 2, None, None] + t * (b[..., 2] - a[..., 2])[..., None, None]
        near, depth_g = [], []
        for segs in self._group_segments:  # per group: the nearest segment's distance and its depth there
            if len(segs) == 1:
                dg2, dg = d2[:, segs[0]], depth[:, segs[0]]
            else:
                dg2, i = d2[:, segs].min(1)
                dg = torch.gather(depth[:, segs], 1, i[:, None])[:, 0]
            near.append(dg2)
            depth_g.append(dg)
        best = torch.exp(-torch.stack(near, 1) / (2 * self.cfg.sigma**2))  # exp once per group, not per segment
        depth_g = torch.stack(depth_g, 1) * (best > 1e-3)
        h, w = self.grid.shape[:2]
        coords = self.grid.permute(2, 0, 1)[None].expand(N, -1, -1, -1)
        cams = nn.functional.one_hot(camera.long(), self.cfg.cameras).to(points.dtype)[:, :, None, None]
        return torch.cat([best, depth_g, coords, cams.expand(-1, -1, h, w)], 1)

    def forward(self, points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.planes(points, camera)))

    @torch.no_grad()
    def draw(self, points: torch.Tensor, camera: torch.Tensor) -> np.ndarray:
        return to_uint8(self(points, camera))
