"""The learned simulator, natively batched: all sub-envs advance in one backend call per step. A full
`gymnasium.vector.VectorEnv` (next-step autoreset as Gymnasium 1.x defines it, `call` / `get_attr` /
`set_attr`, `_key` info masks), so vector-env tooling such as LeRobot's eval loop drives it as it is."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..backends import Session, action_variant_of
from ..embodiments import ActionError, action_space_for, observation_space_for, validate_action
from .learned_env import render_fps, resolve_backend, resolve_start
from .start import context_from_observations, last_observation
from ..errors import UserError


def noise_streams(value, n: int) -> list[int]:
    """`reset(options={"noise_stream": ...})`: one non-negative whole number, or a list of n."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * n
    if len(values) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                                   for v in values):
        raise UserError(f"options['noise_stream']={value!r}: give a whole number >= 0 or a list of {n} of them "
                        "(one per sub-env being reset)")
    return [int(v) for v in values]


class LearnedVectorEnv(VectorEnv):
    """`gymnasium.make_vec(<learned env id>, num_envs=N)`. `reset(seed=s)` starts sub-env i from the
    start source with seed s + i (a list gives each its seed); autoresets draw seeds from `np_random`.
    Sub-envs are truncated after `max_episode_steps`. With `autoreset_mode=AutoresetMode.DISABLED` a
    finished sub-env is not stepped again (reward 0, its last observation) until
    `reset(options={"reset_mask": mask})`: evaluation then spends no model calls on finished episodes.
    `reset(options={"noise_stream": j})` (or one j per sub-env) rolls the same starts on independent noise
    streams of the backend (j = 0 is the default stream)."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP, "render_fps": 10}

    def __init__(self, num_envs: int, backend=None, start=None, *, checkpoint=None, instruction: str | None = None,
                 success_threshold: float | None = None, max_episode_steps: int | None = None,
                 render_mode: str = "rgb_array", out_of_limits: str = "clip",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, **backend_kwargs):
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
            raise UserError(f"autoreset_mode={autoreset_mode}; this env supports NEXT_STEP and DISABLED")
        if isinstance(num_envs, bool) or not float(num_envs).is_integer():
            raise UserError(f"num_envs={num_envs!r} must be a whole number of envs")
        if int(num_envs) < 1:
            raise UserError(f"num_envs={num_envs} must be >= 1")
        self.backend = resolve_backend(backend, checkpoint, backend_kwargs)
        self.embodiment = spec = self.backend.spec
        self.cameras = tuple(self.backend.cameras)
        self.action_variant = action_variant_of(self.backend)
        self.start = resolve_start(start)
        self.num_envs, self.instruction = int(num_envs), instruction
        self.success_threshold = self.backend.success_threshold if success_threshold is None else float(success_threshold)
        self.max_episode_steps, self.render_mode, self.out_of_limits = max_episode_steps, render_mode, out_of_limits
        self.metadata = {**self.metadata, "render_fps": render_fps(spec), "autoreset_mode": autoreset_mode}
        self.single_observation_space = observation_space_for(spec, list(self.cameras))
        self.single_action_space = action_space_for(spec, self.action_variant)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._keys = [spec.camera(c).key for c in self.cameras]
        self._session: Session | None = None
        self._obs: dict[str, np.ndarray] | None = None

    def _start_session(self, seeds: list[int], options: dict | None) -> tuple[Session, dict[str, np.ndarray]]:
        if self.start is None:
            raise UserError("this vector env has no start source; make it with start=<real simulator id>")
        instruction = (options or {}).get("instruction", self.instruction)
        ctx = context_from_observations(self.embodiment, self.cameras, [self.start(s) for s in seeds],
                                        self.backend.history, instruction)
        # each session gets the seed a single env reset with its start seed would give it: batch == single.
        # options["noise_stream"] (an int, or one per sub-env) j > 0 takes the (j+1)-th draw instead: the same start
        # rolled again on an independent noise stream (stream 0 is the default)
        streams = noise_streams((options or {}).get("noise_stream", 0), len(seeds))
        session = self.backend.reset(ctx, seed=[int(np_random(s)[0].integers(2**31, size=j + 1)[j])
                                                for s, j in zip(seeds, streams)])
        return session, last_observation(self.embodiment, self.cameras, ctx)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        # a list of per-env seeds seeds np_random with its first entry, so the run is reproducible too
        mask = None if options is None else options.get("reset_mask")
        if mask is not None and self._session is not None:
            return self._reset_masked(np.asarray(mask, bool), seed, options)
        super().reset(seed=seed if isinstance(seed, int) or seed is None else int(seed[0]))
        n = self.num_envs
        self._session, self._obs = self._start_session(self._seeds(seed, np.arange(n)), options)
        self._steps = np.zeros(n, int)
        self._needs_reset = np.zeros(n, bool)
        return self._copy_obs(), {}

    def _reset_masked(self, mask: np.ndarray, seed, options: dict):
        """Reset the sub-envs where `mask` is True (seeds: an int s gives sub-env i seed s + i, a list one
        seed per masked sub-env, None draws them)."""
        if mask.shape != (self.num_envs,):
            raise UserError(f"reset_mask has shape {mask.shape}, expected ({self.num_envs},)")
        idx = np.nonzero(mask)[0]
        self._restart(idx, self._seeds(seed, idx), options)
        return self._copy_obs(), {}

    def _seeds(self, seed, idx: np.ndarray) -> list[int]:
        """Start seeds of sub-envs `idx`: an int s gives sub-env i seed s + i, a list one seed each, None draws
        them from np_random."""
        if seed is None:
            return [int(s) for s in self.np_random.integers(2**31, size=len(idx))]
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + int(i) for i in idx]
        seeds = [int(s) for s in seed]
        if len(seeds) != len(idx):
            raise UserError(f"reset got {len(seeds)} seeds for {len(idx)} sub-envs")
        return seeds

    def _restart(self, idx: np.ndarray, seeds: list[int], options: dict | None) -> None:
        """Start sub-envs `idx` afresh from the start source with `seeds`."""
        if len(idx):
            session, obs = self._start_session(seeds, options)
            self._session.assign(idx, session)
            for k in self._obs:
                self._obs[k][idx] = obs[k]
            self._steps[idx] = 0
            self._needs_reset[idx] = False

    def _copy_obs(self) -> dict:
        return {k: v.copy() for k, v in self._obs.items()}

    def step(self, actions):
        if self._session is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.ndim != 2 or actions.shape[0] != self.num_envs:
            raise UserError(f"actions have shape {actions.shape}, expected ({self.num_envs}, "
                             f"{self.single_action_space.shape[0]}) for num_envs={self.num_envs}")
        try:  # the batch at once; on a bad action, name the sub-env
            checked: dict = {}
            actions = validate_action(self.embodiment, actions, variant=self.action_variant,
                                      out_of_limits=self.out_of_limits, report=checked)
        except ActionError:
            for i, a in enumerate(actions):
                try:
                    validate_action(self.embodiment, a, variant=self.action_variant, out_of_limits=self.out_of_limits,
                                    allow_chunk=False)
                except ActionError as e:
                    raise ActionError(f"sub-env {i}: {e}") from None
            raise
        n = self.num_envs
        rewards = np.zeros(n, np.float64)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        skip = self._needs_reset.copy()  # finished last step: reset now (NEXT_STEP) or left alone (DISABLED)
        resetting = np.nonzero(skip)[0]
        if len(resetting) and self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            # next-step autoreset: this step only resets them
            self._restart(resetting, [int(s) for s in self.np_random.integers(2**31, size=len(resetting))], None)
        active = np.nonzero(~skip)[0]
        extra: dict[str, np.ndarray] = {}
        if len(active):
            sub = self._session.select(active) if len(active) < n else self._session
            pred = self.backend.step(sub, actions[active])
            if sub is not self._session:
                self._session.assign(active, sub)
            for c, k in zip(self.cameras, self._keys):
                self._obs[k][active] = pred.frames[c]
            self._obs["observation.state"][active] = pred.state
            self._steps[active] += 1
            rewards[active] = pred.reward
            terminated[active] = pred.reward >= self.success_threshold
            if self.max_episode_steps is not None:
                truncated[active] = self._steps[active] >= self.max_episode_steps
            for key, value in pred.info.items():
                full = np.zeros((n, *np.shape(value)[1:]), np.asarray(value).dtype)
                full[active] = value
                extra[key] = full
        self._needs_reset = self._needs_reset | terminated | truncated
        info: dict[str, Any] = {"is_success": terminated.copy(), "_is_success": np.isin(np.arange(n), active),
                                "action_clipped": checked["clipped"], "_action_clipped": np.ones(n, bool)}
        for key, value in extra.items():
            info[key], info[f"_{key}"] = value, info["_is_success"].copy()
        return self._copy_obs(), rewards, terminated, truncated, info

    def render(self):
        if self._obs is None:
            return None
        return tuple(self._obs[self._keys[0]].copy())

    # gymnasium.vector.VectorEnv's attribute access, as SyncVectorEnv offers it: every sub-env shares the
    # attributes of this one batched env, so `call` returns one value per sub-env
    def call(self, name: str, *args, **kwargs) -> tuple:
        if name == "render":  # each sub-env's own frame, as SyncVectorEnv.call("render") gives (LeRobot's eval videos)
            frames = self.render()
            return tuple(frames) if frames is not None else (None,) * self.num_envs
        value = getattr(self, name)
        if callable(value):
            value = value(*args, **kwargs)
        return tuple(value for _ in range(self.num_envs))

    def get_attr(self, name: str) -> tuple:
        return self.call(name)

    def set_attr(self, name: str, values) -> None:
        if isinstance(values, (list, tuple)):
            if len(values) != self.num_envs or any(v is not values[0] and v != values[0] for v in values):
                raise UserError(f"set_attr({name!r}): the sub-envs of a native batched env share attributes; "
                                 "give one value (or num_envs equal values)")
            values = values[0]
        setattr(self, name, values)

    @property
    def _max_episode_steps(self) -> int | None:
        return self.max_episode_steps

    def close_extras(self, **kwargs):
        if self.start is not None and hasattr(self.start, "close"):
            self.start.close()
