"""The world model: a Cosmos-3-style Mixture-of-Transformers (Reasoner + Generator towers)."""

from .checkpoint import CheckpointError
from .config import PRESETS, ModelConfig, get_config
from .frame_tokenizer import FrameAutoencoder, psnr
from .mot import MoTBlock
from .sprite_renderer import SpriteRenderer, SpriteRendererConfig, make_renderer
from .state_renderer import StateRenderer, StateRendererConfig
from .world_model import PrefixCache, WorldModel, attention_mask

__all__ = [
    "CheckpointError",
    "FrameAutoencoder",
    "ModelConfig",
    "MoTBlock",
    "PRESETS",
    "PrefixCache",
    "SpriteRenderer",
    "SpriteRendererConfig",
    "StateRenderer",
    "StateRendererConfig",
    "WorldModel",
    "attention_mask",
    "get_config",
    "make_renderer",
    "psnr",
]
