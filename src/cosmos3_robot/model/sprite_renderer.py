"""A renderer for top-down planar scenes that draws a frame from a low-dimensional state by compositing
learned sprites: a learned background image, and per entity of the state's geometry (a point: x, y; a pose:
x, y, cos, sin) a learned RGBA sprite in the entity's own frame, placed by its position and turned by its
angle (`grid_sample` through one affine map per entity), drawn over the background in the order listed.
Every parameter is fit to real frames (`fit_sprites`); nothing about the scene's objects is written here.

It does the conv `StateRenderer`'s job for a few percent of its arithmetic: one bilinear lookup per pixel
and entity instead of ~20 M multiply-adds a frame (benchmarks/renderer_bench.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import parse_geometry
from .state_renderer import to_uint8
from ..errors import UserError


@dataclass(frozen=True)
class SpriteRendererConfig:
    geometry: str  # e.g. "point:0,pose:2": dims 0-1 a point, dims 2-5 a pose (x, y, cos, sin), in [-1, 1]
    # per entity of `geometry`, in its order: the sprite's centre (cx, cy) in the entity's frame and its
    # half-width, in the image's [-1, 1] units
    boxes: tuple[tuple[float, float, float], ...]
    image_size: int = 96
    sprite_size: int = 32
    kind: str = "sprite"
    draw_order: tuple[int, ...] = field(default=())  # entity indices, back to front; default: as listed

    def parts(self) -> list[tuple[str, int]]:
        parts = parse_geometry(self.geometry, "SpriteRendererConfig.geometry")
        if not parts:
            raise UserError("SpriteRendererConfig.geometry is empty; name at least one 'point:<dim>' or 'pose:<dim>'")
        if len(self.boxes) != len(parts):
            raise UserError(f"SpriteRendererConfig.boxes has {len(self.boxes)} entries for {len(parts)} entities "
                             f"in geometry {self.geometry!r}; give one (cx, cy, half_width) per entity")
        if any(len(b) != 3 or b[2] <= 0 for b in self.boxes):
            raise UserError(f"SpriteRendererConfig.boxes={self.boxes}: each entry is (cx, cy, half_width > 0)")
        if self.draw_order and sorted(self.draw_order) != list(range(len(parts))):
            raise UserError(f"SpriteRendererConfig.draw_order={self.draw_order} must list each of the "
                             f"{len(parts)} entities once")
        return parts

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpriteRendererConfig:
        d = dict(d)
        d["boxes"] = tuple(tuple(b) for b in d["boxes"])
        d["draw_order"] = tuple(d.get("draw_order", ()))
        return cls(**d)


class SpriteRenderer(nn.Module):
    """state (b, k) -> frames (b, H, W, 3) uint8 (`draw`) or float in [0, 1] (`forward`, (b, 3, H, W))."""

    def __init__(self, cfg: SpriteRendererConfig):
        super().__init__()
        self.cfg = cfg
        self._parts = cfg.parts()
        n, s, h = len(self._parts), cfg.sprite_size, cfg.image_size
        # colours and alpha as logits (a clamp would stop the gradient of a colour that overshoots); sprites
        # start grey and transparent
        self.background = nn.Parameter(torch.zeros(3, h, h))
        self.colour = nn.Parameter(torch.zeros(n, 3, s, s))
        self.alpha = nn.Parameter(torch.full((n, 1, s, s), -3.0))
        # per entity: a learned affine from the state's position to image coordinates (starts as identity)
        self.place = nn.Parameter(torch.tensor([[1.0, 1.0, 0.0, 0.0]] * n))
        self.register_buffer("boxes", torch.tensor(cfg.boxes, dtype=torch.float32), persistent=False)
        self._order = list(cfg.draw_order) or list(range(n))

    def _grid(self, state: torch.Tensor, j: int) -> torch.Tensor:
        """The sampling grid of entity j: each pixel's place in the sprite, (b, H, W, 2) in [-1, 1]."""
        theta = self._theta(state, j)[0]
        return F.affine_grid(theta, [state.shape[0], 1, self.cfg.image_size, self.cfg.image_size], align_corners=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        b = state.shape[0]
        out = torch.sigmoid(self.background).unsqueeze(0).expand(b, -1, -1, -1)
        for j in self._order:
            rgba = F.grid_sample(self._sprite(j, b), self._grid(state, j), mode="bilinear", padding_mode="zeros",
                                 align_corners=False)
            out = out * (1 - rgba[:, 3:]) + rgba[:, :3]
        return out

    def _sprite(self, j: int, b: int) -> torch.Tensor:
        """Entity j's sprite, premultiplied RGB and alpha, (b, 4, s, s) (one copy, expanded over the batch)."""
        a = torch.sigmoid(self.alpha[j])
        return torch.cat([torch.sigmoid(self.colour[j]) * a, a]).unsqueeze(0).expand(b, -1, -1, -1)

    def _theta(self, state: torch.Tensor, j: int) -> torch.Tensor:
        """Entity j's affine (b, 2, 3) from image coordinates to its sprite's (body = R(-angle) (pixel - centre);
        sprite = (body - box centre) / half), and its centre (b, 2), cos and sin (b,) in the image."""
        kind, i = self._parts[j]
        scale, offset = self.place[j, :2], self.place[j, 2:]
        centre = state[:, i : i + 2] * scale + offset
        if kind == "pose":
            cos, sin = state[:, i + 2], state[:, i + 3]
            norm = torch.sqrt(cos * cos + sin * sin).clamp_min(1e-6)
            cos, sin = cos / norm, sin / norm
        else:
            cos, sin = torch.ones_like(centre[:, 0]), torch.zeros_like(centre[:, 0])
        cx, cy, half = self.boxes[j, 0], self.boxes[j, 1], self.boxes[j, 2]
        rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1) / half  # (b, 2, 2)
        shift = -(rot @ centre.unsqueeze(-1)).squeeze(-1) - torch.stack([cx, cy]) / half
        return torch.cat([rot, shift.unsqueeze(-1)], -1), centre, cos, sin

    @torch.no_grad()
    def draw(self, state: torch.Tensor) -> np.ndarray:
        """Frames (b, H, W, 3) uint8: `forward`'s, computed only in a window around each sprite (the pixels that
        can see it; outside it a sprite adds nothing), the same numbers in a fraction of the work."""
        return to_uint8(self.composite_windows(state))

    @torch.no_grad()
    def composite_windows(self, state: torch.Tensor) -> torch.Tensor:
        """`forward`'s frames (b, 3, H, W), sampling each sprite only in its window."""
        b, size = state.shape[0], self.cfg.image_size
        base = torch.linspace(-1, 1, size) * (size - 1) / size  # affine_grid's pixel centres (align_corners=False)
        out = torch.sigmoid(self.background).reshape(1, 3, size * size).expand(b, -1, -1).contiguous()
        for j in self._order:
            theta, centre, cos, sin = self._theta(state, j)
            cx, cy, half = self.boxes[j, 0], self.boxes[j, 1], self.boxes[j, 2]
            # the sprite box's centre in the image, and a window that holds the box turned any way, with a
            # texel's bilinear reach and a pixel's rounding to spare
            mid = centre + torch.stack([cos * cx - sin * cy, sin * cx + cos * cy], -1)
            reach = float(half) * 2**0.5 * (1 + 2 / self.cfg.sprite_size)
            win = min(size, int(np.ceil(2 * reach * size / 2)) + 4)
            start = torch.floor((mid + 1) * size / 2 - win / 2).long().clamp(0, size - win)  # (b, 2): x, y
            ix = start[:, 0:1] + torch.arange(win)  # (b, win)
            iy = start[:, 1:2] + torch.arange(win)
            grid_in = torch.stack([base[ix].unsqueeze(1).expand(b, win, win), base[iy].unsqueeze(2).expand(b, win, win),
                                   torch.ones(b, win, win)], -1).reshape(b, win * win, 3)
            grid = grid_in.bmm(theta.transpose(1, 2)).reshape(b, win, win, 2)
            rgba = F.grid_sample(self._sprite(j, b), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            index = (iy.unsqueeze(2) * size + ix.unsqueeze(1)).reshape(b, 1, win * win).expand(b, 3, -1)
            region = out.gather(2, index)
            rgba = rgba.reshape(b, 4, win * win)
            out.scatter_(2, index, region * (1 - rgba[:, 3:]) + rgba[:, :3])
        return out.reshape(b, 3, size, size)

    def drawer(self, runtime: str = "torch", search=()):
        """-> f(state (b, k)) -> (b, H, W, 3) uint8, like `draw`. Eager under either runtime: the work is a
        few large operators, which ONNX Runtime does not run faster."""
        from .runtime import check_runtime

        check_runtime(runtime)
        return self.draw

    @torch.no_grad()
    def init_from_frames(self, frames: torch.Tensor) -> None:
        """Start the background at the frames' per-pixel median ((n, 3, H, W) uint8): what the moving
        entities cover is the background's outlier."""
        median = (frames[:2048].float().median(0).values / 255).clamp(1 / 512, 1 - 1 / 512)
        self.background.copy_(torch.logit(median))


def make_renderer(config: dict) -> nn.Module:
    """A renderer from its config dict: `kind` "sprite" -> `SpriteRenderer`, otherwise (no kind: older
    checkpoints) the conv `StateRenderer`."""
    from .state_renderer import StateRenderer, StateRendererConfig

    kind = config.get("kind", "conv")
    if kind == "sprite":
        return SpriteRenderer(SpriteRendererConfig.from_dict(config))
    if kind != "conv":
        raise UserError(f"renderer kind={kind!r}; expected 'sprite' or 'conv'")
    return StateRenderer(StateRendererConfig.from_dict({k: v for k, v in config.items() if k != "kind"}))
