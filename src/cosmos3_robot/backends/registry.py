"""Backend registry: a checkpoint's config.json names its backend (`"backend": "structured"`), and
`load_backend` dispatches to that backend's `load`. Entry points are "module:attr" strings, so a
backend (or a user's own) is imported only when a checkpoint needs it."""

from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path

from ..model.checkpoint import CheckpointError, read_raw_config
from ..errors import UserError

BACKENDS: dict[str, str] = {
    "structured": "cosmos3_robot.backends.structured:StructuredBackend",
    "mot": "cosmos3_robot.backends.mot:MoTBackend",
}


def register_backend(name: str, entry_point: str) -> None:
    """Make `load_backend` dispatch checkpoints whose config says `"backend": name` to `entry_point`
    ("module:Class"; the class has a `load(path, **kwargs)` classmethod)."""
    if ":" not in entry_point:
        raise UserError(f"entry_point {entry_point!r} must be 'module:attribute'")
    BACKENDS[name] = entry_point


# task classes a checkpoint's config.json may name ("task": "module:Class"); the task packages register theirs.
# Loading a checkpoint never imports a module the file names unless it is here: checkpoints are shared files.
TASK_ENTRY_POINTS: set[str] = set()


def register_task_entry_point(entry_point: str) -> None:
    """Allow checkpoints to name the task class `entry_point` ("module:Class", from_config(config, spec))."""
    if ":" not in entry_point:
        raise UserError(f"entry_point {entry_point!r} must be 'module:attribute'")
    TASK_ENTRY_POINTS.add(entry_point)


def resolve_task_entry_point(entry_point, source: str):
    """A task class named by a checkpoint file: only a registered one, else CheckpointError naming the file."""
    if not isinstance(entry_point, str) or entry_point not in TASK_ENTRY_POINTS:
        raise CheckpointError(f"{source} names task {entry_point!r}, which no registered task provides (registered: "
                              f"{sorted(TASK_ENTRY_POINTS)}); a checkpoint cannot make this program import code. "
                              "Register your task with cosmos3_robot.backends.register_task_entry_point")
    return resolve_entry_point(entry_point)


def resolve_entry_point(entry_point: str):
    """Import "module:attr": for entry points from this program's own registries, never from a file."""
    module, _, attr = entry_point.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"cannot import {module!r} of entry point {entry_point!r}: {e}") from e
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def shipped_checkpoint(name: str) -> Path:
    """Path of a checkpoint shipped inside the package (`src/cosmos3_robot/checkpoints/<name>`)."""
    path = Path(str(resources.files("cosmos3_robot") / "checkpoints" / name))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no shipped checkpoint {name!r} at {path}; give a checkpoint directory instead")
    return path


def checkpoint_path(checkpoint) -> Path:
    """A checkpoint directory, or the name of a shipped one."""
    path = Path(checkpoint)
    if (path / "config.json").is_file():
        return path
    if path.exists():
        raise CheckpointError(f"{str(path)!r} is not a checkpoint directory (no config.json)")
    if "/" not in str(checkpoint):
        return shipped_checkpoint(str(checkpoint))
    raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")


def backend_name(checkpoint) -> str:
    raw = read_raw_config(checkpoint_path(checkpoint))
    # world-model checkpoints written before backends existed have no "backend" key: they are MoT ones
    return raw.get("backend", "mot")


def load_backend(checkpoint, **kwargs):
    """The backend a checkpoint directory (or shipped checkpoint name) names, loaded with `kwargs`;
    "remote" is a served model: `load_backend("remote", url=...)` (`RemoteBackend`)."""
    if str(checkpoint) == "remote":
        from .remote import RemoteBackend

        if "url" not in kwargs:
            raise UserError("backend='remote' needs url= (a server started with `cosmos3-robot serve`, or vLLM-Omni)")
        return RemoteBackend(**kwargs)
    path = checkpoint_path(checkpoint)
    name = backend_name(path)
    if name not in BACKENDS:
        raise CheckpointError(f"{str(path / 'config.json')!r} names backend {name!r}; registered backends: "
                              f"{sorted(BACKENDS)} (register one with cosmos3_robot.backends.register_backend)")
    return resolve_entry_point(BACKENDS[name]).load(path, **kwargs)
