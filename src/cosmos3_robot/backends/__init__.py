"""World-model backends behind one interface: `structured` (a task's perceived state, learned dynamics
and renderer), `mot` (the Cosmos-style transformer on frames); `load_backend(checkpoint)` dispatches on
the checkpoint's config."""

from .base import Backend, Context, Prediction, Session, action_variant_of, pad_history
from .registry import (BACKENDS, backend_name, checkpoint_path, load_backend, register_backend,
                       register_task_entry_point, shipped_checkpoint)

__all__ = [
    "BACKENDS",
    "Backend",
    "Context",
    "Prediction",
    "Session",
    "action_variant_of",
    "backend_name",
    "checkpoint_path",
    "load_backend",
    "pad_history",
    "register_backend",
    "register_task_entry_point",
    "shipped_checkpoint",
]
