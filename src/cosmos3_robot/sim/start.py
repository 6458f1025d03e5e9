"""Where a learned episode starts: a real simulator's reset (same seed -> same first frame in both),
or first frames given at reset (`options`: an observation, frames + state, or a dataset episode)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ..embodiments import EmbodimentSpec
from ..backends.base import Context
from ..errors import UserError


RESET_OPTIONS = {"observation", "frames", "state", "episode", "start", "instruction"}


class RealStart:
    """Reset a real simulator (a gymnasium id or an env) with the episode's seed and start from its
    observation. The env is made on first use."""

    def __init__(self, env, **kwargs):
        self._env = env if isinstance(env, gym.Env) else None
        self._id, self._kwargs = (None if self._env is not None else env), kwargs

    def __call__(self, seed: int | None) -> dict:
        if self._env is None:
            self._env = gym.make(self._id, **self._kwargs)
        obs, _ = self._env.reset(seed=seed)
        return obs

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def _camera_frames(spec: EmbodimentSpec, cameras: tuple[str, ...], frames, field: str) -> dict[str, np.ndarray]:
    """`frames` given for one camera (an array) or per camera (keyed by name or LeRobot key) -> name -> (T, H, W, 3)."""
    if not isinstance(frames, dict):
        if len(cameras) != 1:
            raise UserError(f"reset option {field!r} is one array, but this env has cameras {list(cameras)}: "
                             "pass a dict camera -> frames")
        frames = {cameras[0]: frames}
    out = {}
    for cam in cameras:
        key = spec.camera(cam).key
        value = frames.get(cam, frames.get(key))
        if value is None:
            raise UserError(f"reset option {field!r} has no frames for camera {cam!r} ({key}); it has {sorted(frames)}")
        value = np.asarray(value)
        out[cam] = value[None] if value.ndim == 3 else value
    return out


def context_from_options(spec: EmbodimentSpec, cameras: tuple[str, ...], history: int, options: dict,
                         instruction: str | None) -> Context | None:
    """A batch-1 Context from reset options, or None when they name no first frames."""
    unknown = sorted(set(options) - RESET_OPTIONS)
    if unknown:
        raise UserError(f"reset options {unknown} are not known; the options are {sorted(RESET_OPTIONS)}")
    if "observation" in options:
        return context_from_observations(spec, cameras, [options["observation"]], history, instruction)
    if "frames" in options:
        frames = _camera_frames(spec, cameras, options["frames"], "frames")
        n = len(next(iter(frames.values())))
        if options.get("state") is None:
            raise UserError(f"reset option 'frames' needs 'state': the robot state of those frames, ({spec.state.dims},) "
                             f"or (T, {spec.state.dims}) in physical units ({', '.join(spec.state.dim_names)}); the "
                             "learned simulator does not read it off the frames")
        try:
            state = np.asarray(options["state"], np.float64)
        except (TypeError, ValueError):
            raise UserError(f"reset option 'state' is not numeric; give ({spec.state.dims},) or (T, {spec.state.dims}) "
                             "numbers") from None
        if state.ndim not in (1, 2) or state.shape[-1] != spec.state.dims or (state.ndim == 2 and len(state) != n):
            raise UserError(f"reset option 'state' has shape {state.shape}; expected ({spec.state.dims},) or "
                             f"({n}, {spec.state.dims}) for {n} frame(s) of {spec.name!r}")
        state = np.broadcast_to(state if state.ndim == 2 else state[None], (n, state.shape[-1]))
    elif "episode" in options:
        ep, t = options["episode"], int(options.get("start", 0))
        lo = max(0, t - history + 1)
        frames = {cam: np.asarray(f)[lo : t + 1] for cam, f in _camera_frames(spec, cameras, ep["frames"], "episode").items()}
        state = np.asarray(ep["state"], np.float64)[lo : t + 1]
    else:
        return None
    return make_context(spec, cameras, {c: f[None] for c, f in frames.items()}, state[None], history, instruction)


def make_context(spec: EmbodimentSpec, cameras: tuple[str, ...], frames: dict[str, np.ndarray], state: np.ndarray,
                 history: int, instruction: str | None) -> Context:
    """Validate frames camera -> (B, T, H, W, 3) and states (B, T, S) against the spec; keep the last `history`
    steps (a shorter context is padded by the backend)."""
    state = np.asarray(state, np.float64)
    if state.ndim != 3 or state.shape[-1] != spec.state.dims:
        raise UserError(f"start state has shape {state.shape[1:]} per env, expected (T, {spec.state.dims}) for "
                         f"{spec.name!r}")
    if not np.isfinite(state).all():
        raise UserError("start state holds NaN or inf; give finite states in the spec's physical units")
    out = {}
    for cam in cameras:
        c = spec.camera(cam)
        f = np.asarray(frames[cam])
        if f.shape[2:] != (c.height, c.width, 3) or f.shape[:2] != state.shape[:2]:
            raise UserError(f"start frames for camera {cam!r} have shape {f.shape}, expected "
                             f"{(*state.shape[:2], c.height, c.width, 3)} (batch, steps, height, width, 3) uint8")
        if f.dtype != np.uint8:
            raise UserError(f"start frames for camera {cam!r} have dtype {f.dtype}; expected uint8 in [0, 255]")
        out[cam] = f[:, -history:]
    return Context(out, state[:, -history:], instruction)


def context_from_observations(spec: EmbodimentSpec, cameras: tuple[str, ...], observations: list[dict], history: int,
                              instruction: str | None) -> Context:
    """One real observation (LeRobot keys) per env -> a Context of B = len(observations), one step each."""
    frames = {cam: np.stack([np.asarray(o[spec.camera(cam).key]) for o in observations])[:, None] for cam in cameras}
    state = np.stack([np.asarray(o["observation.state"], np.float64) for o in observations])[:, None]
    return make_context(spec, cameras, frames, state, history, instruction)


def last_observation(spec: EmbodimentSpec, cameras: tuple[str, ...], ctx: Context) -> dict[str, np.ndarray]:
    """The (B, ...) observation of a context's last step: frames uint8, the state clipped to the spec's limits."""
    obs = {spec.camera(cam).key: np.ascontiguousarray(ctx.frames[cam][:, -1], np.uint8) for cam in cameras}
    obs["observation.state"] = np.clip(ctx.state[:, -1], spec.state.lower, spec.state.upper).astype(np.float32)
    return obs
