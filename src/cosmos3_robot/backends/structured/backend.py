"""The structured backend: perceived state -> learned state dynamics -> learned renderer -> reward.

The task supplies the pieces as one `torch.nn.Module` (`StructuredTask`): how to read its world state
off real frames, how that state moves under an action, how to draw it per camera, what the spec's
robot state and the reward are. The backend keeps the history of world states per session, steps
them in one batched call and writes / reads the checkpoint; it knows no task. A checkpoint's
config.json names the task module as an entry point ("module:Class")."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ...embodiments import EmbodimentSpec, load_spec
from ...model.checkpoint import load_state_checked, read_raw_config, read_weights, write_checkpoint
from ...model.runtime import ONNX_DIR, RUNTIMES
from ..base import Context, Prediction, Session, pad_history, session_seeds
from ..streams import session_normals
from ..registry import resolve_task_entry_point
from ...errors import UserError

PRECISIONS = ("float32", "bfloat16")


class StructuredTask(Protocol):
    """The task's pieces. World states are float32 arrays (B, W) in whatever layout the task chooses."""

    config: dict

    @classmethod
    def from_config(cls, config: dict, spec: EmbodimentSpec) -> StructuredTask: ...

    def perceive(self, frames: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
        """camera -> (N, H, W, 3) uint8 real frames, (N, S) robot states -> (N, W) world states."""

    def rest_actions(self, world: np.ndarray) -> np.ndarray:
        """(B, W) -> (B, A): the action that holds a world still (the previous action at a reset)."""

    def step(self, world: np.ndarray, actions: np.ndarray, prev_actions: np.ndarray,
             noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None
             ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """history (B, T, W), actions and the actions before (B, A) in physical units -> next world (B, W), or
        (next world, per-session info arrays such as the sampler's "disagreement"). A stochastic step draws its
        noise from `noise(shape)` -> (B, *shape) standard normal, each session's rows from its own stream."""

    def observe(self, world: np.ndarray) -> np.ndarray:
        """(B, W) -> the spec's robot state (B, S), physical units inside the spec's limits."""

    def render(self, world: np.ndarray) -> dict[str, np.ndarray]:
        """(B, W) -> camera -> (B, H, W, 3) uint8 at the spec's resolution."""

    # optional: `cameras`, the names of the spec's cameras the task draws (a scene may have fewer than its
    # robot's spec: default, all of them)
    # optional: use_runtime(runtime: str, search: list[Path]) -> None, to run its networks through ONNX Runtime
    # ("onnxruntime", graphs looked up in `search`, the checkpoint's onnx/ folder) instead of eager "torch"

    def reward(self, world: np.ndarray) -> np.ndarray:
        """(B, W) -> (B,) float reward; success is reward >= the checkpoint's success threshold."""


class StructuredBackend:
    """A `Backend` around a task's `StructuredTask` module, stepped with the spec's default action or
    `action_variant`. `runtime`: "torch" runs the task's networks
    eagerly; "onnxruntime" runs them as exported ONNX graphs (same results to float32 rounding, several
    times faster at small batches; tasks without `use_runtime` stay eager); "auto" (default) is
    "onnxruntime" where the task supports it, "torch" under bfloat16. `precision="bfloat16"` runs the
    renderer under CPU bfloat16 autocast (eager only; frames differ from float32 by a few grey levels)."""

    def __init__(self, task: torch.nn.Module, spec: EmbodimentSpec, history: int = 2, success_threshold: float = 0.9,
                 entry_point: str | None = None, provenance: dict | None = None, precision: str = "float32",
                 runtime: str = "auto", search: Sequence[Path] = (), action_variant: str | None = None):
        if precision not in PRECISIONS:
            raise UserError(f"precision={precision!r}; expected one of {PRECISIONS}")
        if runtime not in ("auto", *RUNTIMES):
            raise UserError(f"runtime={runtime!r}; expected 'auto' or one of {RUNTIMES}")
        if runtime == "onnxruntime" and precision == "bfloat16":
            raise UserError("precision='bfloat16' runs under eager torch autocast; pass runtime='torch' (or 'auto')")
        if history < 1:
            raise UserError(f"history={history} must be >= 1")
        self.task, self.spec = task.eval(), spec
        if action_variant is not None:
            spec.action_variant(action_variant)  # an unknown variant fails here, naming the spec's
        self.action_variant = action_variant
        # the cameras the task draws: its own `cameras` (a subset of the spec's, in the spec's names), else all
        self.cameras = tuple(getattr(task, "cameras", None) or (c.name for c in spec.cameras))
        unknown = set(self.cameras) - {c.name for c in spec.cameras}
        if unknown:
            raise UserError(f"the task draws cameras {sorted(unknown)} that spec {spec.name!r} does not have")
        self.history, self.success_threshold = int(history), float(success_threshold)
        self.entry_point = entry_point or f"{type(task).__module__}:{type(task).__qualname__}"
        self.provenance = dict(provenance or {})
        self.precision = precision
        if runtime == "auto":
            runtime = "torch" if precision == "bfloat16" or not hasattr(task, "use_runtime") else "onnxruntime"
        if runtime == "onnxruntime" and not hasattr(task, "use_runtime"):
            raise UserError(f"{self.entry_point} has no use_runtime(); it runs under runtime='torch' only")
        self.runtime, self._search, self._ready = runtime, list(search), False

    def prepare(self) -> None:
        """Hand the task its runtime (exporting graphs not found); done at the first reset, so building a
        backend only to save it exports nothing."""
        if not self._ready and hasattr(self.task, "use_runtime"):
            self.task.use_runtime(self.runtime, self._search)
        self._ready = True

    def reset(self, ctx: Context, seed: int | Sequence[int] | None = None) -> Session:
        self.prepare()
        B, T = ctx.batch, ctx.history
        frames = {cam: np.asarray(f).reshape(B * T, *np.shape(f)[2:]) for cam, f in ctx.frames.items()}
        world = self.task.perceive(frames, np.asarray(ctx.state, np.float64).reshape(B * T, -1))
        world = pad_history(np.asarray(world, np.float32).reshape(B, T, -1), self.history)
        # sampled steps draw from one stream per session (seed, step), not from a batch-wide generator
        return Session({"world": world, "prev_action": np.asarray(self.task.rest_actions(world[:, -1]), np.float64),
                        "noise_seed": session_seeds(seed, B), "t": np.zeros(B, np.int64)},
                       instruction=ctx.instruction)

    def calibrations(self, session: Session) -> list[dict]:
        """Per session each camera's `CameraCalibration` in its current world state, where the task computes
        them (`calibrations(world)`: a camera on the arm moves with it); else one empty dict per session."""
        if not hasattr(self.task, "calibrations"):
            return [{} for _ in range(len(session))]
        return self.task.calibrations(np.asarray(session.data["world"][:, -1], np.float64))

    @property
    def reads_state(self) -> bool:
        """Whether the task reads the robot state off frames (`read_state`), so a start may omit it."""
        return hasattr(self.task, "read_state")

    def read_state(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """camera -> (T, H, W, 3) -> the robot state (T, S) the task reads off them."""
        return np.asarray(self.task.read_state(frames), np.float64)

    @torch.no_grad()
    def inverse_dynamics(self, ctx: Context, chunk: int, candidates: int = 256, rounds: int = 4,
                         seed: int = 0) -> np.ndarray:
        """Frames clean, actions unknown (Cosmos 3's third action mode), with the same learned dynamics that
        steps the env: for each step of the clip (B = 1, T frames), the action whose forward step lands closest to
        the next perceived world, by a cross-entropy search over `candidates` actions for `rounds` rounds
        (zero flow noise: the search is deterministic for a seed). -> (chunk, A) physical units; a clip of fewer
        than chunk + 1 frames repeats its last inferred action."""
        self.prepare()
        if ctx.batch != 1 or ctx.history < 2:
            raise UserError(f"inverse dynamics needs one clip of at least 2 frames; got {ctx.batch} clip(s) of "
                             f"{ctx.history}")
        T = ctx.history
        frames = {cam: np.asarray(f)[0] for cam, f in ctx.frames.items()}
        worlds = np.asarray(self.task.perceive(frames, np.asarray(ctx.state, np.float64)[0]), np.float32)
        vec = self.spec.action_variant(self.action_variant)
        lo, hi = np.asarray(vec.lower, np.float64), np.asarray(vec.upper, np.float64)
        rng = np.random.default_rng(seed)
        zeros = lambda shape: torch.zeros((candidates, *shape))  # noqa: E731
        prev = np.asarray(self.task.rest_actions(worlds[:1]), np.float64)[0]
        out = []
        for t in range(min(T - 1, chunk)):
            history = pad_history(worlds[None, max(0, t - self.history + 1): t + 1], self.history)
            history = np.repeat(history, candidates, 0)
            mean, std = (lo + hi) / 2, (hi - lo) / 2
            for r in range(rounds):
                acts = rng.uniform(lo, hi, (candidates, len(lo))) if r == 0 else \
                    np.clip(mean + std * rng.standard_normal((candidates, len(lo))), lo, hi)
                acts[0] = prev  # the last action is always a candidate
                nxt, _, _ = advance(self.task, history, acts, np.repeat(prev[None], candidates, 0), zeros)
                err = ((nxt - worlds[t + 1]) ** 2).sum(-1)
                elite = acts[np.argsort(err, kind="stable")[: max(4, candidates // 16)]]
                mean, std = elite[0], np.maximum(elite.std(0), 1e-3 * (hi - lo))
            out.append(mean)
            prev = mean
        while len(out) < chunk:
            out.append(out[-1])
        return np.stack(out)

    def _autocast(self):
        if self.precision == "bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def step(self, session: Session, actions: np.ndarray) -> Prediction:
        actions = np.asarray(actions, np.float64)
        world = session.data["world"]
        seeds, t = session.data["noise_seed"], session.data["t"]

        def noise(shape: tuple[int, ...]) -> torch.Tensor:  # one stream per session: batch == single
            return torch.from_numpy(session_normals(seeds, t, shape)).float()

        nxt, session.data["world"], info = advance(self.task, world, actions, session.data["prev_action"], noise)
        session.data["t"] = t + 1
        session.data["prev_action"] = actions
        with self._autocast():
            frames = self.task.render(nxt)
        reward = np.asarray(self.task.reward(nxt), np.float64)
        return Prediction(frames=frames, state=np.asarray(self.task.observe(nxt), np.float32), reward=reward,
                          success=reward >= self.success_threshold,
                          info={k: np.asarray(v, np.float64) for k, v in info.items()})

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory) -> None:
        config = {"backend": "structured", "task": self.entry_point, "embodiment": self.spec.name,
                  "history": self.history, "success_threshold": self.success_threshold,
                  "task_config": self.task.config, "provenance": self.provenance}
        if self.action_variant is not None:
            config["action_variant"] = self.action_variant
        write_checkpoint(directory, self.task.state_dict(), config)

    @classmethod
    def load(cls, directory, precision: str = "float32", runtime: str = "auto", runtime_search: bool = True,
             **unused) -> StructuredBackend:
        if unused:
            raise TypeError(f"the structured backend takes no options {sorted(unused)}; it accepts precision "
                            "and runtime")
        directory = Path(directory)
        raw = read_raw_config(directory)
        for key in ("task", "embodiment", "task_config"):
            if key not in raw:
                raise UserError(f"{str(directory / 'config.json')!r} lacks {key!r}; a structured checkpoint names "
                                 "its task entry point, embodiment and task_config")
        spec = load_spec(raw["embodiment"])
        task = resolve_task_entry_point(raw["task"], repr(str(directory / "config.json"))).from_config(
            raw["task_config"], spec)
        state, source = read_weights(directory)
        load_state_checked(task, state, source)
        search = [directory / ONNX_DIR] if runtime_search else []
        return cls(task, spec, raw.get("history", 2), raw.get("success_threshold", 0.9), raw["task"],
                   raw.get("provenance"), precision, runtime, search, raw.get("action_variant"))


def advance(task: StructuredTask, world: np.ndarray, actions: np.ndarray, prev_actions: np.ndarray,
            noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One step of `task` from a history (B, T, W): -> the next world (B, W) float32, the history moved on to
    end with it (B, T, W), and the step's info (empty where the task returns none). The learned env steps
    through this, and so does a policy that imagines its chunks with the same dynamics."""
    out = task.step(world, actions, prev_actions, noise=noise)
    nxt, info = out if isinstance(out, tuple) else (out, {})
    nxt = np.asarray(nxt, np.float32)
    return nxt, np.concatenate([world[:, 1:], nxt[:, None]], axis=1), info


def export_graphs(directory) -> list[Path]:
    """Export the ONNX graphs a structured checkpoint runs under runtime="onnxruntime" into its onnx/ folder,
    so its first load needs no export (stale graphs of earlier weights or code are removed). -> the files."""
    import shutil
    import tempfile

    from ...model import runtime

    directory = Path(directory)
    with tempfile.TemporaryDirectory() as tmp, runtime.cache_at(tmp):
        StructuredBackend.load(directory, runtime="onnxruntime", runtime_search=False).prepare()  # all export
        made = sorted(runtime.cache_dir().glob("*.onnx"))
        out = directory / ONNX_DIR
        out.mkdir(exist_ok=True)
        for old in out.glob("*.onnx"):
            if old.name not in {m.name for m in made}:
                old.unlink()
        for m in made:
            shutil.copyfile(m, out / (m.name + ".tmp"))
            (out / (m.name + ".tmp")).replace(out / m.name)
    return [out / m.name for m in made]
