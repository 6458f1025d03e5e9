"""The generic learned simulator: any `Backend` behind a Gymnasium env (single and natively batched),
started from a real simulator's reset, a dataset episode or given frames. Knows no task."""

from ..backends import Backend, Context, Prediction, Session, load_backend, register_backend
from .learned_env import LearnedEnv
from .start import RealStart, context_from_observations, make_context
from .vector_env import LearnedVectorEnv

__all__ = [
    "Backend",
    "Context",
    "LearnedEnv",
    "LearnedVectorEnv",
    "Prediction",
    "RealStart",
    "Session",
    "context_from_observations",
    "load_backend",
    "make_context",
    "register_backend",
]
