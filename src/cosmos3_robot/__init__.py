"""cosmos3-robot: a Cosmos-3-style world model as a robotics workbench."""

from .registration import make_vec_env, register_envs

__version__ = "0.1.0"
register_envs()

__all__ = ["make_vec_env", "register_envs"]
