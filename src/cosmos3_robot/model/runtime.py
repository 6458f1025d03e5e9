"""Run a small module's inference through ONNX Runtime instead of eager PyTorch.

A learned simulator steps one small network per control step. At batch 1 on a CPU, eager PyTorch spends
most of that step dispatching a few hundred tiny operators (about 5-10 us each); ONNX Runtime runs the same
graph for a fraction of that (see docs/speed.md). `OnnxFunction` exports a module's `forward` once with
`torch.onnx.export` (the dynamo exporter, batch dimension dynamic), caches the graph under a fingerprint of
the weights, the input shapes and the source of every module class involved, and runs it with one
`onnxruntime.InferenceSession`. Outputs match eager PyTorch to float32 rounding (about 1e-7)."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from ..errors import UserError

RUNTIMES = ("torch", "onnxruntime")
SPLIT_BATCH = 16  # batches from this size run on all threads
ONNX_DIR = "onnx"  # a checkpoint's folder of exported graphs, searched before the user cache


_CACHE_OVERRIDE: list[Path] = []


def cache_dir() -> Path:
    """Where exported graphs are written: $COSMOS3_ROBOT_CACHE/onnx, else ~/.cache/cosmos3_robot/onnx."""
    if _CACHE_OVERRIDE:
        return _CACHE_OVERRIDE[-1]
    root = os.environ.get("COSMOS3_ROBOT_CACHE") or Path.home() / ".cache" / "cosmos3_robot"
    return Path(root) / ONNX_DIR


@contextlib.contextmanager
def cache_at(directory):
    """Within the block, graphs are looked up and exported in `directory` instead of the user cache."""
    _CACHE_OVERRIDE.append(Path(directory))
    try:
        yield
    finally:
        _CACHE_OVERRIDE.pop()


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UserError(f"runtime={runtime!r}; expected one of {RUNTIMES}")
    return runtime


def fingerprint(module: nn.Module, example: tuple[torch.Tensor, ...]) -> str:
    """A hash of everything the exported graph depends on: the weights and buffers, the example inputs'
    shapes past the batch dimension and dtypes, and the source files of the module classes that run."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    # buffers computed at construction (frequencies, bounds) differ in the last bit between CPUs (AMD vs Intel
    # exp/sin): 4 significant digits of them, so a graph exported on one machine is found on another (6 digits
    # were not enough: a frequency of 421.6965 read 421.696 on one Intel host and 421.697 on another)
    for name, t in sorted((n, b) for n, b in module.named_buffers() if n not in module.state_dict()):
        h.update(name.encode())
        h.update(" ".join(f"{v:.4g}" for v in t.detach().cpu().double().reshape(-1).tolist()).encode())
    for x in example:
        h.update(f"{tuple(x.shape[1:])}{x.dtype}".encode())
    files = sorted({inspect.getsourcefile(type(m)) for m in module.modules()
                    if type(m).__module__.startswith("cosmos3_robot")} - {None})
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def export_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """`module.forward(*example)` -> an ONNX graph at `path` whose inputs share one dynamic batch dimension
    (written to a temporary name first, so an interrupted export leaves nothing half-written)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    dims = tuple({0: batch} for _ in example)
    params = list(inspect.signature(module.forward).parameters.values())
    if len(params) == 1 and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        dims = {params[0].name: dims}  # forward(*x): torch.export wants the specs under the varargs' name
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), example, dynamo=True, verbose=False,
                                    input_names=[f"x{i}" for i in range(len(example))],
                                    dynamic_shapes=dims)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    buf = io.BytesIO()
    program.save(buf)
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


class OnnxFunction:
    """`module`'s forward as an ONNX Runtime session: called with tensors, returns a tuple of tensors. The
    graph is looked up by `name` and fingerprint in `search` folders then the user cache, and exported into
    the cache on a miss (a few seconds, once per weights)."""

    def __init__(self, module: nn.Module, example: tuple[torch.Tensor, ...], name: str,
                 search: list[Path] | tuple = (), threads: int | None = None):
        # distinct tensors: the exporter merges inputs that are one object, and the graph would read one for both
        example = tuple(x.detach().clone() for x in example)
        file = f"{name}-{fingerprint(module, example)}.onnx"
        found = [Path(d) / file for d in (*search, cache_dir()) if (Path(d) / file).is_file()]
        self.path = found[0] if found else cache_dir() / file
        if not found:
            export_onnx(module, example, self.path)
        self.threads = threads or torch.get_num_threads()
        self.sessions = {1: self._session(1)}
        names = [i.name for i in self.sessions[1].get_inputs()]
        if names != [f"x{i}" for i in range(len(example))]:
            raise RuntimeError(f"{self.path}: the exported graph reads inputs {names} of x0..x{len(example) - 1}; "
                               f"{type(module).__name__}.forward must use every input")
        self.dtypes = [x.numpy().dtype for x in example]

    def _session(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle pool threads must not spin: the env's own numpy and torch work runs between calls
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (onnxruntime raises its own kinds for a broken file)
            raise UserError(f"ONNX graph {str(self.path)!r} cannot be loaded ({type(e).__name__}: {str(e)[:200]}); "
                            "delete it and it is exported again at the next load (or run `cosmos3-robot export-onnx "
                            "CHECKPOINT` for a checkpoint's own graphs)") from None

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feed = {f"x{i}": np.ascontiguousarray(a.detach().numpy(), dt) for i, (a, dt) in enumerate(zip(args, self.dtypes))}
        # one thread for small batches (splitting them costs more than it saves), all of them for large ones
        threads = 1 if args[0].shape[0] < SPLIT_BATCH else self.threads
        if threads not in self.sessions:
            self.sessions[threads] = self._session(threads)
        return tuple(torch.from_numpy(o) for o in self.sessions[threads].run(None, feed))
