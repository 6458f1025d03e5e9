"""cosmos3-robot: a Cosmos-3-style world model as a robotics workbench."""

import os as _os
import sys as _sys

# MuJoCo scenes (the Franka cube, ALOHA) need an OpenGL backend chosen before mujoco is imported; on a headless
# Linux box (no display) that is EGL, or gym.make dies with "gladLoadGL error". A user's own MUJOCO_GL wins.
if _sys.platform.startswith("linux") and not _os.environ.get("DISPLAY") and not _os.environ.get("WAYLAND_DISPLAY"):
    _os.environ.setdefault("MUJOCO_GL", "egl")

from .registration import make_vec_env, register_envs

__version__ = "0.1.0"
register_envs()

__all__ = ["make_vec_env", "register_envs"]
