"""Model configuration: one dataclass, three presets (tiny for tests, small for the shipped learned
simulator, nano = Cosmos3-Nano's backbone shape, for parameter and FLOP accounting only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from ..errors import UserError


FRAME_PREDICTIONS = ("velocity", "x0")
FRAME_HEADS = ("linear", "conv")
# fields of earlier checkpoints whose modules moved out of the transformer (task heads now live in the
# structured backend's checkpoints): ignored when read
REMOVED_FIELDS = ("pose_dynamics_width", "field_renderer_width")


def parse_geometry(text: str, field: str) -> list[tuple[str, int]]:
    """"point:0,pose:2" -> [("point", 0), ("pose", 2)]: state dims drawn as planar geometry (a point: x, y; a
    pose: x, y, cos, sin), in image coordinates [-1, 1]."""
    parts = []
    for item in filter(None, text.split(",")):
        kind, _, dim = item.partition(":")
        if kind not in ("point", "pose") or not dim.isdigit():
            raise UserError(f"{field} item {item!r} must be 'point:<dim>' or 'pose:<dim>'")
        parts.append((kind, int(dim)))
    return parts


@dataclass(frozen=True)
class ModelConfig:
    # backbone (per tower; the Mixture-of-Transformers has a reasoner and a generator tower)
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2  # grouped-query attention
    head_dim: int = 16
    ffn_dim: int = 128  # SwiGLU hidden width
    rope_theta: float = 10000.0
    mrope_section: tuple[int, int, int] = (24, 20, 20)  # Cosmos 3 / Qwen3-VL (t, h, w) of 64 slots, rescaled
    norm_eps: float = 1e-6
    # text (byte-level, read by the reasoner tower)
    vocab_size: int = 259  # 256 bytes + pad + bos + judge query
    max_text_len: int = 16
    # frames
    image_size: int = 32
    image_channels: int = 3
    latent_channels: int = 8
    ae_widths: tuple[int, ...] = (16, 32, 32)  # one stride-2 stage per entry: downsample 2**len
    latent_patch: int = 1  # latent pixels per token side
    max_cameras: int = 4
    # actions and state (zero-padded to a common width; per-embodiment projections by domain id)
    action_dim: int = 64  # Cosmos 3's common padded width
    state_dim: int = 64
    n_domains: int = 8
    # diffusion (rectified flow)
    action_loss_weight: float = 10.0  # Cosmos 3 weights the action loss by 10
    time_shift: float = 1.0  # logit-normal time sampling, shifted toward noise when > 1
    sample_steps: int = 4  # Euler steps at inference (Cosmos' DROID policy serves with 4)
    residual_frames: bool = False  # generate future latents as a change from the last context frame
    action_to_frames: bool = False  # also add each action's embedding to the tokens of the frame it leads to
    # what the frame head predicts: "velocity" (noise - data, rectified-flow default) or "x0" (the clean
    # latents themselves; the sampler derives the velocity). x0 spares the head from reproducing the
    # noise, which for small frame changes (residual frames) is most of a velocity target.
    frame_prediction: str = "velocity"
    # learned absolute position embedding on generator frame tokens, on top of 3D mRoPE (as Cosmos-Predict's
    # DiT adds one per block): without it a background token cannot tell where it is, and rendering an
    # object at a coordinate given by state/action (the pusher) has to come from relative rotations alone
    frame_pos_embed: bool = False
    # how generator tokens become frame latents: "linear" (one projection per token to its latent patch, DiT
    # style) or "conv" (the projection gives features per latent pixel, and a small conv net over [those
    # features, the noisy input, the last two context latents, pixel coordinates] makes the prediction:
    # measured, a 4x4 token grid cannot place the sub-token motion of a small moving object with a linear head,
    # and a conv net over the latent grid can; docs/research-log.md)
    frame_head: str = "linear"
    conv_head_width: int = 96
    conv_head_layers: int = 4
    # > 0: the conv frame head also reads the first this-many dims of the future step's state (the model's
    # own clean estimate, or the true state while training) as constant planes and their products with
    # the pixel coordinates, so a frame can be drawn from a state, e.g. the pusher and the T at their
    # predicted poses (a perceived state, `embodiments.perception`): the frame is then rendered afresh
    # each step instead of carried over from a blurring context frame
    conv_head_state: int = 0
    # how the conv head draws those state dims: "" = generic planes (s, x*s, y*s); or planar geometry in
    # the image's [-1, 1] coordinates, e.g. "point:0,pose:2": dims 0-1 a point (planes X - px, Y - py), dims
    # 2-5 a pose x, y, cos, sin (planes X - x, Y - y and the body-frame coordinates u, v): a shape at a
    # pose is then a fixed function of (u, v) per pixel, which a conv net learns in minutes
    state_geometry: str = ""
    # generate the future state as a change from the last context state (as residual_frames for frames)
    residual_state: bool = False

    @property
    def downsample(self) -> int:
        return 2 ** len(self.ae_widths)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def grid_size(self) -> int:
        """Tokens per frame side (latent grid over latent_patch)."""
        return self.latent_size // self.latent_patch

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_size**2

    def __post_init__(self):
        if self.n_heads % self.n_kv_heads:
            raise UserError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}")
        if self.head_dim % 2:
            raise UserError(f"head_dim={self.head_dim} must be even for rotary embeddings")
        if self.frame_prediction not in FRAME_PREDICTIONS:
            raise UserError(f"frame_prediction={self.frame_prediction!r} must be one of {FRAME_PREDICTIONS}")
        if self.conv_head_state and self.frame_head != "conv":
            raise UserError(f"conv_head_state={self.conv_head_state} needs frame_head='conv'")
        if not 0 <= self.conv_head_state <= self.state_dim:
            raise UserError(f"conv_head_state={self.conv_head_state} must be in [0, state_dim={self.state_dim}]")
        self.geometry_parts()  # validates state_geometry
        if self.frame_head not in FRAME_HEADS:
            raise UserError(f"frame_head={self.frame_head!r} must be one of {FRAME_HEADS}")
        if self.image_size % self.downsample or self.latent_size % self.latent_patch:
            raise UserError(
                f"image_size={self.image_size} must divide by downsample={self.downsample} x latent_patch="
                f"{self.latent_patch}"
            )

    def geometry_parts(self) -> list[tuple[str, int]]:
        """`state_geometry` parsed: [(kind, first dim), ...]."""
        parts = parse_geometry(self.state_geometry, "state_geometry")
        for kind, dim in parts:
            end = dim + (2 if kind == "point" else 4)
            if end > self.conv_head_state:
                raise UserError(f"state_geometry '{kind}:{dim}' reads dims up to {end - 1}, past conv_head_state="
                                 f"{self.conv_head_state}")
        return parts

    def geometry_planes(self) -> int:
        """Input planes the conv head gets from the state (0 without conv_head_state)."""
        parts = self.geometry_parts()
        if parts:
            return sum(2 if kind == "point" else 4 for kind, _ in parts)
        return 3 * self.conv_head_state

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k not in REMOVED_FIELDS}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"config.json has unknown ModelConfig keys {unknown}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    # The shipped MoT simulator's size, sized to train on 2 CPU cores: 96x96 frames -> 12x12x8
    # latents -> 4x4 tokens of 3x3 latent patches; 4 MoT layers of width 160.
    "small": ModelConfig(
        dim=160, n_layers=4, n_heads=5, n_kv_heads=1, head_dim=32, ffn_dim=480, max_text_len=24,
        image_size=96, latent_channels=8, ae_widths=(24, 48, 64), latent_patch=3,
    ),
    # Cosmos3-Nano backbone shape (Qwen3-VL-8B language model, two towers): hidden 4096, 36 layers,
    # 32 query / 8 KV heads of dim 128, SwiGLU 12288, vocab 151936 (Qwen3 tokenizer), 720p-class frames.
    "nano": ModelConfig(
        dim=4096, n_layers=36, n_heads=32, n_kv_heads=8, head_dim=128, ffn_dim=12288, rope_theta=5_000_000.0,
        vocab_size=151936, max_text_len=512, image_size=512, latent_channels=16, ae_widths=(128, 256, 512),
        latent_patch=2,
    ),
}


def get_config(preset: str, **overrides) -> ModelConfig:
    if preset not in PRESETS:
        raise UserError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)
