"""Checkpoints: `config.json` (model config + metadata such as embodiment specs and normalizer
stats) and `model.safetensors`, sharded as `model-0000k-of-0000n.safetensors` with
`model.safetensors.index.json` (the Hugging Face layout) when larger than one shard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from ..errors import UserError

CONFIG, WEIGHTS, INDEX = "config.json", "model.safetensors", "model.safetensors.index.json"


class CheckpointError(UserError):
    """A checkpoint file is missing, corrupt or does not match the model; names file and key."""


def _atomic_save(tensors: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, path)  # a kill mid-save leaves the previous file intact


def save_pretrained(model, directory, max_shard_bytes: int = 2 * 1024**3, dtype: torch.dtype | None = None,
                    keep_full: tuple[str, ...] = ()) -> None:
    """Write config.json + weights; `dtype` (e.g. torch.float16) stores floating tensors smaller
    (loading casts them back to the model's dtype), except those whose names start with a prefix in
    `keep_full`."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() and not k.startswith(tuple(keep_full)) else v
                 for k, v in state.items()}
    write_checkpoint(directory, state, {"model": model.cfg.to_dict(), "metadata": model.metadata}, max_shard_bytes)


def write_checkpoint(directory, state: dict[str, torch.Tensor], config: dict,
                     max_shard_bytes: int = 2 * 1024**3) -> None:
    """`config` as config.json and the tensors `state` as safetensors (sharded past `max_shard_bytes`);
    each file is written to a temporary name and renamed, so a kill leaves the previous file intact."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    shards, current, size = [], {}, 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key] = tensor
        size += nbytes
    shards.append(current)
    tmp = directory / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, directory / CONFIG)
    if len(shards) == 1:
        for old in [*directory.glob("model-*.safetensors"), directory / INDEX]:
            old.unlink(missing_ok=True)
        _atomic_save(shards[0], directory / WEIGHTS)
        return
    (directory / WEIGHTS).unlink(missing_ok=True)
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        _atomic_save(shard, directory / name)
        weight_map.update({k: name for k in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (directory / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def _load_shard(path: Path, map_location: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing")
    try:
        return load_file(path, device=map_location)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt or not safetensors: {e}") from e


def refuse_overwrite(out, overwrite: bool) -> None:
    """Raise unless `out` holds no checkpoint yet (no config.json) or `overwrite` says to replace it: a trainer
    calls this before any long work, so a finished checkpoint is never silently replaced."""
    if (Path(out) / "config.json").is_file() and not overwrite:
        raise UserError(f"--out {str(out)!r} already holds a checkpoint; choose another directory or pass --overwrite")


def read_raw_config(directory) -> dict:
    """config.json of a checkpoint directory as a dict (errors name the file)."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing; is {str(directory)!r} a checkpoint directory?")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint file {str(path)!r} is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} holds {type(raw).__name__}, expected a JSON object")
    return raw


def read_config(directory) -> tuple[ModelConfig, dict]:
    raw = read_raw_config(directory)
    try:
        return ModelConfig.from_dict(raw["model"]), raw.get("metadata", {})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint file {str(Path(directory) / CONFIG)!r} is not a valid model config: {e!r}") from e


def read_weights(directory, map_location: str = "cpu") -> tuple[dict[str, torch.Tensor], str]:
    """All tensors of a checkpoint directory (one file or shards) and the file they were read from."""
    directory = Path(directory)
    if (directory / INDEX).is_file():
        try:
            weight_map = json.loads((directory / INDEX).read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"checkpoint file {str(directory / INDEX)!r} is corrupt: {e!r}") from e
        state = {}
        for shard in sorted(set(weight_map.values())):
            state.update(_load_shard(directory / shard, map_location))
        return state, str(directory / INDEX)
    return _load_shard(directory / WEIGHTS, map_location), str(directory / WEIGHTS)


def load_state_checked(module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `module`, casting to its dtypes; missing/unexpected keys or a wrong shape raise a
    CheckpointError naming the file and the key."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {source!r} does not match the model: missing keys {missing[:5]},"
                              f" unexpected keys {unexpected[:5]}")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise CheckpointError(f"checkpoint {source!r}: key {key!r} has shape {tuple(state[key].shape)},"
                                  f" the model expects {tuple(tensor.shape)} (config.json and weights disagree)")
    module.load_state_dict(state)


def from_pretrained(cls, directory, map_location: str = "cpu"):
    cfg, metadata = read_config(directory)
    state, source = read_weights(directory, map_location)
    model = cls(cfg, metadata)
    load_state_checked(model, state, source)
    return model.eval()
