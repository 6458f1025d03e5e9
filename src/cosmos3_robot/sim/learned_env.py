"""The learned simulator as a Gymnasium env: a thin loop around a backend (as DIAMOND's world_model_env).
The env does spaces, validation, chunking, seeding and starts; the backend does the dynamics; the env
knows no task."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from ..backends import Backend, action_variant_of, load_backend
from ..embodiments import action_space_for, observation_space_for, validate_action
from .start import RealStart, context_from_observations, context_from_options, last_observation
from ..errors import UserError


def resolve_backend(backend, checkpoint, backend_kwargs: dict) -> Backend:
    """A Backend instance, or one loaded from `checkpoint` (a directory or shipped name; `backend` may be
    such a path too)."""
    if checkpoint is not None:
        backend = checkpoint
    if backend is None:
        raise UserError("give a backend or a checkpoint (a checkpoint directory or the name of a shipped one)")
    embodiment = backend_kwargs.pop("embodiment", None)  # what the registered id expects (a served model's spec)
    if isinstance(backend, (str, Path)):
        if str(backend) == "remote" and embodiment is not None:
            backend_kwargs.setdefault("spec", embodiment)
        loaded = load_backend(backend, **backend_kwargs)
        if embodiment is not None and loaded.spec.name != embodiment:
            raise UserError(f"backend {str(backend)!r} is for embodiment {loaded.spec.name!r}; this env is for "
                             f"{embodiment!r}")
        return loaded
    if backend_kwargs:
        raise TypeError(f"options {sorted(backend_kwargs)} are for loading a checkpoint; this backend is already built")
    if not isinstance(backend, Backend):
        raise TypeError(f"backend {backend!r} does not implement the Backend protocol (spec, cameras, history, "
                        "success_threshold, reset, step)")
    return backend


def resolve_start(start):
    if start is None or callable(start):
        return start
    if isinstance(start, str):
        return RealStart(start)
    raise TypeError(f"start={start!r}: give a gymnasium id of a real simulator, a callable seed -> observation, or None")


def render_fps(spec) -> int | float:
    """The spec's video rate as `metadata["render_fps"]`: an int where it is whole, as Gymnasium's own envs
    give it (video writers such as PyAV's, which LeRobot's eval uses, refuse a float rate)."""
    fps = float(spec.video_fps)
    return int(fps) if fps.is_integer() else fps


class LearnedEnv(gym.Env):
    """A learned simulator (what the task packages register, e.g. `gymnasium.make("cosmos3_robot/<Task>-v0")`).

    reset options (at most one source of first frames; without one the `start` source is reset with the
    episode's seed):
      - `observation`: a real observation (LeRobot keys);
      - `frames` (one camera's (H, W, 3) / (T, H, W, 3) uint8, or a dict per camera) and `state` ((S,) / (T, S));
      - `episode` (frames per camera key, state) and `start` (the step index);
      - `instruction`: the task text for this episode (default: the env's, else the spec's task).
    An action chunk (T, A) runs T steps and returns the last observation; `info["frames"]` holds every frame
    of the chunk's first camera. Reward is the backend's; `terminated` when it reaches the success threshold."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, backend=None, start=None, *, checkpoint=None, instruction: str | None = None,
                 success_threshold: float | None = None, max_episode_steps: int | None = None,
                 render_mode: str = "rgb_array", out_of_limits: str = "clip", **backend_kwargs):
        self.backend = resolve_backend(backend, checkpoint, backend_kwargs)
        self.embodiment = spec = self.backend.spec
        self.cameras = tuple(self.backend.cameras)
        self.action_variant = action_variant_of(self.backend)
        self.start = resolve_start(start)
        self.instruction = instruction
        self.success_threshold = self.backend.success_threshold if success_threshold is None else float(success_threshold)
        self.max_episode_steps, self.render_mode, self.out_of_limits = max_episode_steps, render_mode, out_of_limits
        self.metadata = {**self.metadata, "render_fps": render_fps(spec)}
        self.observation_space = observation_space_for(spec, list(self.cameras))
        self.action_space = action_space_for(spec, self.action_variant)
        self._session = None
        self._obs = None

    def _context(self, seed, options: dict):
        instruction = options.get("instruction", self.instruction)
        ctx = context_from_options(self.embodiment, self.cameras, self.backend.history, options, instruction)
        if ctx is not None:
            return ctx
        if self.start is None:
            raise UserError("this env has no start source: pass reset(options={'observation': ...}) or "
                             "{'frames': ..., 'state': ...}, or make it with start=<real simulator id>")
        # a given seed starts the real simulator with that same seed (paired runs); otherwise np_random draws one
        obs = self.start(seed if seed is not None else int(self.np_random.integers(2**31)))
        return context_from_observations(self.embodiment, self.cameras, [obs], self.backend.history, instruction)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        ctx = self._context(seed, dict(options or {}))
        self._session = self.backend.reset(ctx, seed=[int(self.np_random.integers(2**31))])
        self._steps = 0
        self._obs = {k: v[0] for k, v in last_observation(self.embodiment, self.cameras, ctx).items()}
        return self._copy_obs(), {"is_success": False}

    def _copy_obs(self) -> dict:
        return {k: v.copy() for k, v in self._obs.items()}

    def step(self, action):
        if self._session is None:
            raise RuntimeError("call reset() before step()")
        checked: dict = {}
        action = validate_action(self.embodiment, action, variant=self.action_variant, out_of_limits=self.out_of_limits,
                                 report=checked)
        chunk = action[None] if action.ndim == 1 else action
        first_key = self.embodiment.camera(self.cameras[0]).key
        frames, success, reward, info = [], False, 0.0, {}
        if len(chunk) > 1 and hasattr(self.backend, "step_chunk"):  # one model call for the chunk (a served model)
            preds = iter(self.backend.step_chunk(self._session, chunk[None]))
        else:
            preds = (self.backend.step(self._session, a[None]) for a in chunk)
        for pred in preds:
            self._steps += 1
            self._obs = {self.embodiment.camera(cam).key: pred.frames[cam][0] for cam in self.cameras}
            self._obs["observation.state"] = pred.state[0]
            reward = float(pred.reward[0])
            success = bool(pred.reward[0] >= self.success_threshold)
            info = {k: v[0] for k, v in pred.info.items()}
            frames.append(self._obs[first_key])
            if success:
                break
        info |= {"is_success": success, "frames": np.stack(frames), "action_clipped": int(np.sum(checked["clipped"]))}
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        return self._copy_obs(), reward, success, truncated, info

    def calibrations(self) -> dict:
        """Each camera's `CameraCalibration` in the current imagined state, where the backend computes them (a
        wrist camera follows the imagined arm); {} before reset or where the backend cannot."""
        if self._session is None or not hasattr(self.backend, "calibrations"):
            return {}
        return self.backend.calibrations(self._session)[0]

    def render(self):
        return None if self._obs is None else self._obs[self.embodiment.camera(self.cameras[0]).key].copy()

    def close(self):
        if self.start is not None and hasattr(self.start, "close"):
            self.start.close()
