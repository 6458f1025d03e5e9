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
        self._cached = None  # (parameters' versions, constants) for drawing; see `_constants`

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
        """Frames (b, H, W, 3) uint8: the same bytes as `to_uint8(forward(state))`, computed only in a window
        around each sprite (outside it a sprite adds nothing); elsewhere a frame is the background's bytes,
        converted once. The work per frame is the windows', not the image's."""
        b, size = state.shape[0], self.cfg.image_size
        frames = np.empty((b, size * size, 3), np.uint8)
        frames[:] = self._constants()["background_u8"]
        frames = frames.reshape(b, size, size, 3)
        for start, win, region in self._windows(state):  # in draw order: a later window overwrites
            # to_uint8's arithmetic (x 255, half to even, clamp), then channels last on the bytes
            values = np.clip(np.rint(region * 255), 0, 255).astype(np.uint8).reshape(b, 3, win, win)
            for i, (x0, y0) in enumerate(start.tolist()):  # a square of each frame: slices
                frames[i, y0 : y0 + win, x0 : x0 + win] = values[i].transpose(1, 2, 0)
        return frames

    @torch.no_grad()
    def composite_windows(self, state: torch.Tensor) -> torch.Tensor:
        """`forward`'s frames (b, 3, H, W), the same numbers, sampling each sprite only in windows."""
        b, size = state.shape[0], self.cfg.image_size
        out = self._constants()["background"].repeat(b, 1, 1)  # a new frame
        for start, win, region in self._windows(state):
            out.scatter_(2, torch.from_numpy(self._flat(start, win)).unsqueeze(1).expand(b, 3, -1),
                         torch.from_numpy(region))
        return out.view(b, 3, size, size)

    def _flat(self, start: np.ndarray, win: int) -> np.ndarray:
        """The flat pixel indices (b, win * win) of windows whose corners are `start` (b, 2: x, y)."""
        rows = np.arange(win)
        return ((start[:, 1:2, None] + rows[:, None]) * self.cfg.image_size + (start[:, 0:1, None] + rows)).reshape(
            len(start), -1)

    def _windows(self, state: torch.Tensor) -> list[tuple[np.ndarray, int, np.ndarray]]:
        """Per entity, in draw order: its window's corner (b, 2: x, y) and size, and the frame's final values in
        it, (b, 3, win * win), for every entity drawn up to and including it. A pixel's final value is that of
        the last window holding it: entities drawn later add nothing there. So each window composites the
        entities before it too, in the frames where their windows overlap it (elsewhere they add exactly
        nothing). The placements and affines run in numpy (the same float32 operations as `_theta`, so the
        same bits, at a fraction of torch's per-call cost for a small batch); so does the blending, the same
        float32 operations as `forward`'s; the sampling is torch's `grid_sample`."""
        const = self._constants()
        b, size = state.shape[0], self.cfg.image_size
        s = np.ascontiguousarray(state.detach().numpy(), np.float32)
        placed = []
        for j in self._order:
            win = const["windows"][j]
            theta, mid = self._theta_np(s, j, const)
            # a window around the sprite box's centre that holds the box turned any way, with a texel's
            # bilinear reach and a pixel's rounding to spare
            start = np.clip(np.floor((mid + 1) * size / 2 - win / 2).astype(np.int64), 0, size - win)  # (b, 2)
            placed.append((j, theta, start, win))
        background = const["background"].numpy().reshape(3, size, size)
        out = []
        for n, (_, _, start, win) in enumerate(placed):
            region = np.empty((b, 3, win, win), np.float32)
            for i, (x0, y0) in enumerate(start.tolist()):  # the background in each frame's window: slices
                region[i] = background[:, y0 : y0 + win, x0 : x0 + win]
            region = region.reshape(b, 3, win * win)
            x, y = const["base"][start[:, 0:1] + np.arange(win)], const["base"][start[:, 1:2] + np.arange(win)]
            for m, (k, theta, other, other_win) in enumerate(placed[: n + 1]):
                rows = None
                if m < n:  # an earlier entity: only the frames where its window meets this one
                    meet = np.all((other < start + win) & (start < other + other_win), axis=1)
                    if not meet.any():
                        continue
                    rows = np.flatnonzero(meet)
                rgba = self._sample(k, theta, x, y, const, rows)
                if rows is None:
                    region = region * (1 - rgba[:, 3:]) + rgba[:, :3]
                else:
                    region[rows] = region[rows] * (1 - rgba[:, 3:]) + rgba[:, :3]
            out.append((start, win, region))
        return out

    def _sample(self, j: int, theta: np.ndarray, x: np.ndarray, y: np.ndarray, const: dict, rows=None) -> np.ndarray:
        """Entity j's premultiplied RGBA (b, 4, n * m) at the pixels of a window whose columns' and rows' centres
        are x (b, m) and y (b, n), in frames `rows` (all if None)."""
        if rows is not None:
            theta, x, y = theta[rows], x[rows], y[rows]
        b, m, n = len(theta), x.shape[1], y.shape[1]
        # each pixel through the affine: (x t0 + y t1) + t2, as `affine_grid`'s bmm sums them (no fused
        # multiply-add: the same bits), from one product per row and per column
        grid = np.empty((b, n, m, 2), np.float32)
        for c in range(2):
            grid[..., c] = ((x * theta[:, c, 0:1])[:, None, :] + (y * theta[:, c, 1:2])[:, :, None]) \
                + theta[:, c, 2, None, None]
        return F.grid_sample(const["sprites"][j].expand(b, -1, -1, -1), torch.from_numpy(grid), mode="bilinear",
                             padding_mode="zeros", align_corners=False).numpy().reshape(b, 4, n * m)

    def _constants(self) -> dict:
        """What drawing reads that only the weights change (sigmoids, premultiplied sprites, placements, window
        sizes), computed once and again only after a parameter changes (in-place updates bump its version)."""
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        size, n = self.cfg.image_size, len(self._parts)
        with torch.no_grad():
            base = (torch.linspace(-1, 1, size) * (size - 1) / size).numpy()  # affine_grid's pixel centres
            windows = []
            for j in range(n):
                reach = float(self.boxes[j, 2]) * 2**0.5 * (1 + 2 / self.cfg.sprite_size)
                win = min(size, int(np.ceil(2 * reach * size / 2)) + 4)
                windows.append(win)
            background = torch.sigmoid(self.background).reshape(1, 3, size * size)
            const = {"background": background, "background_u8": to_uint8(background.unsqueeze(-1))[0, :, 0],
                     "sprites": [self._sprite(j, 1).contiguous() for j in range(n)],
                     "place": self.place.detach().numpy().copy(), "boxes": self.boxes.numpy().copy(),
                     "windows": windows, "base": base}
        self._cached = (key, const)
        return const

    def _theta_np(self, state: np.ndarray, j: int, const: dict) -> tuple[np.ndarray, np.ndarray]:
        """`_theta`'s affine (b, 2, 3) in numpy float32, operation for operation (the same bits), and the centre
        of entity j's sprite box in the image (b, 2)."""
        kind, i = self._parts[j]
        place, (cx, cy, half) = const["place"][j], const["boxes"][j]
        c0, c1 = state[:, i] * place[0] + place[2], state[:, i + 1] * place[1] + place[3]
        if kind == "pose":
            cos, sin = state[:, i + 2], state[:, i + 3]
            # torch's own sqrt: its vectorised kernel does not always round as numpy's does
            norm = np.maximum(torch.sqrt(torch.from_numpy(cos * cos + sin * sin)).numpy(), np.float32(1e-6))
            cos, sin = cos / norm, sin / norm
        else:
            cos, sin = np.ones_like(c0), np.zeros_like(c0)
        theta = np.empty((len(state), 2, 3), np.float32)
        theta[:, 0, 0], theta[:, 0, 1] = cos / half, sin / half  # rot = [[cos, sin], [-sin, cos]] / half
        theta[:, 1, 0], theta[:, 1, 1] = -sin / half, theta[:, 0, 0]
        theta[:, 0, 2] = -(theta[:, 0, 0] * c0 + theta[:, 0, 1] * c1) - cx / half  # -(rot @ centre) - box / half
        theta[:, 1, 2] = -(theta[:, 1, 0] * c0 + theta[:, 1, 1] * c1) - cy / half
        mid = np.empty((len(state), 2), np.float32)
        mid[:, 0], mid[:, 1] = c0 + (cos * cx - sin * cy), c1 + (sin * cx + cos * cy)
        return theta, mid

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
