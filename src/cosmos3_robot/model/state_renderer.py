"""A renderer that draws a camera frame from a low-dimensional state alone: planar geometry planes of
the state (offsets from points and poses, body-frame coordinates of poses) -> a conv net over the latent
grid -> the frame tokenizer's decoder. It is the part of the world model's conv frame head that a
state-rendering checkpoint runs (`WorldModel.render_state`: token features, noisy input and context
latents are all zero there, so their input channels are dropped), cut out so a learned simulator loads
and runs only what it uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .config import ModelConfig, parse_geometry
from .frame_tokenizer import FrameAutoencoder
from ..errors import UserError


@dataclass(frozen=True)
class StateRendererConfig:
    geometry: str  # e.g. "point:0,pose:2": dims 0-1 a point, dims 2-5 a pose (x, y, cos, sin), in [-1, 1]
    image_size: int = 96
    latent_channels: int = 8
    ae_widths: tuple[int, ...] = (24, 48, 64)
    width: int = 128
    layers: int = 6

    def parts(self) -> list[tuple[str, int]]:
        parts = parse_geometry(self.geometry, "StateRendererConfig.geometry")
        if not parts:
            raise UserError("StateRendererConfig.geometry is empty; name at least one 'point:<dim>' or 'pose:<dim>'")
        return parts

    @property
    def planes(self) -> int:
        return sum(2 if kind == "point" else 4 for kind, _ in self.parts())

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** len(self.ae_widths)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StateRendererConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def geometry_planes(state: torch.Tensor, parts: list[tuple[str, int]], centres: torch.Tensor) -> torch.Tensor:
    """state (n, k) in image coordinates [-1, 1] -> (n, planes, h, w) at the pixel `centres` (2, h, w): per
    point X - px, Y - py; per pose also the body-frame coordinates (rotated by -angle)."""
    X, Y = centres[0], centres[1]
    planes = []
    for kind, i in parts:
        dx = X - state[:, i, None, None]
        dy = Y - state[:, i + 1, None, None]
        planes += [dx, dy]
        if kind == "pose":
            cos, sin = state[:, i + 2, None, None], state[:, i + 3, None, None]
            planes += [cos * dx + sin * dy, -sin * dx + cos * dy]
    return torch.stack(planes, dim=1)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(b, 3, H, W) float in [0, 1] -> (b, H, W, 3) uint8 (x 255, rounded half to even, clamped), C-contiguous."""
    channels_last = frames.detach().float().permute(0, 2, 3, 1).contiguous()
    return torch.round(channels_last * 255).clamp_(0, 255).to(torch.uint8).numpy()


class StateRenderer(nn.Module):
    """state (b, k) -> frames (b, H, W, 3) uint8 (`draw`) or float in [0, 1] (`forward`, (b, 3, H, W))."""

    def __init__(self, cfg: StateRendererConfig):
        super().__init__()
        self.cfg = cfg
        c, w = cfg.latent_channels, cfg.width
        layers = [nn.Conv2d(2 + cfg.planes, w, 3, padding=1), nn.GELU()]
        for _ in range(cfg.layers - 2):
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.GELU()]
        self.head = nn.Sequential(*layers, nn.Conv2d(w, c, 3, padding=1))
        self.tokenizer = FrameAutoencoder(ModelConfig(image_size=cfg.image_size, latent_channels=c,
                                                      ae_widths=tuple(cfg.ae_widths)))
        del self.tokenizer.encoder  # drawing never encodes
        g = cfg.latent_size
        axis = torch.linspace(-1, 1, g)
        self.register_buffer("coords", torch.stack(torch.meshgrid(axis, axis, indexing="xy")), persistent=False)
        centres = (torch.arange(g) + 0.5) / g * 2 - 1
        self.register_buffer("centres", torch.stack(torch.meshgrid(centres, centres, indexing="xy")),
                             persistent=False)
        self._parts = cfg.parts()

    def latents(self, state: torch.Tensor) -> torch.Tensor:
        """(b, k) -> standardized frame latents (b, c, h, w)."""
        coords = self.coords.expand(state.shape[0], *self.coords.shape)  # shape[0]: a dynamic batch exports
        return self.head(torch.cat([coords, geometry_planes(state, self._parts, self.centres)], dim=1))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode(self.latents(state))

    @torch.no_grad()
    def draw(self, state: torch.Tensor) -> np.ndarray:
        return to_uint8(self(state))

    def drawer(self, runtime: str = "torch", search=()):
        """-> f(state (b, k)) -> (b, H, W, 3) uint8, like `draw`, run by `runtime` ("torch" or "onnxruntime";
        see `model.runtime`)."""
        from .runtime import OnnxFunction, check_runtime

        if check_runtime(runtime) == "torch":
            return self.draw
        fn = OnnxFunction(self, (torch.zeros(2, self._state_width()),), "state_renderer",
                          search)
        return lambda state: to_uint8(fn(state)[0])

    def _state_width(self) -> int:
        return max(i + (2 if kind == "point" else 4) for kind, i in self._parts)

    @classmethod
    def from_world_model(cls, model) -> StateRenderer:
        """Cut the state-drawing path out of a `WorldModel` whose conv frame head reads the state's geometry
        (`cfg.state_geometry`): the conv net keeps the input channels of the pixel coordinates and the
        geometry planes (the rest are zero in `render_state`), the tokenizer keeps its decoder."""
        from .world_model import HEAD_CHANNELS

        mc = model.cfg
        if model.frame_conv is None or not mc.state_geometry:
            raise UserError("StateRenderer.from_world_model needs a conv frame head that draws state geometry "
                             "(frame_head='conv', state_geometry set; --frame-head conv --state-geometry ...)")
        conv = [m for m in model.frame_conv if isinstance(m, nn.Conv2d)]
        cfg = StateRendererConfig(geometry=mc.state_geometry, image_size=mc.image_size,
                                  latent_channels=mc.latent_channels, ae_widths=tuple(mc.ae_widths),
                                  width=conv[0].out_channels, layers=len(conv))
        r = cls(cfg)
        state = {f"head.{k}": v.float() for k, v in model.frame_conv.state_dict().items()}
        skip = HEAD_CHANNELS + 3 * mc.latent_channels  # token features, noisy input, two context latents
        state["head.0.weight"] = state["head.0.weight"][:, skip:].contiguous()
        state |= {f"tokenizer.{k}": v.float() for k, v in model.frame_tokenizer.state_dict().items()
                  if not k.startswith("encoder.")}
        r.load_state_dict(state)
        return r.eval()
