"""ALOHA: the gym-aloha adapter (insertion, transfer_cube) in the `aloha` spec's schema."""

from .real import AlohaRealEnv

__all__ = ["AlohaRealEnv"]
