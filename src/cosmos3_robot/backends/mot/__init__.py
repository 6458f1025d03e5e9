"""The MoT backend: the Cosmos-style transformer on frames (tokenizer, MoT, flow sampler, judge)."""

from .backend import MoTBackend, MoTCodec

__all__ = ["MoTBackend", "MoTCodec"]
