"""Serving: any backend behind vLLM-Omni's Cosmos 3 video API (`video_api`)."""

from .video_api import create_app, serve

__all__ = ["create_app", "serve"]
