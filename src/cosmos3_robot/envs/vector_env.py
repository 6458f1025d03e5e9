"""A native batched learned simulator: all sub-envs advance in one model call per step
(`gymnasium.vector.VectorEnv`, next-step autoreset as Gymnasium 1.x defines it)."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..embodiments import validate_action
from .real import action_space_for, make_real_env, observation_space_for
from .world_model_env import LearnedDynamics, load_world_model


class WorldModelVectorEnv(VectorEnv):
    """`cosmos3_robot.make_vec_env("cosmos3_robot/PushT-v0", num_envs=N)`. Sub-env i resets from
    the real simulator with seed `seed + i` (and fresh seeds drawn from `np_random` on autoreset)."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, checkpoint=None, max_episode_steps: int = 300, sample_steps: int | None = None,
                 success_threshold: float | None = None, out_of_limits: str = "clip", sample_noise: float | None = None):
        self.dynamics = LearnedDynamics(load_world_model(checkpoint), sample_steps, sample_noise)
        self.embodiment = self.dynamics.spec
        self.num_envs = num_envs
        self.max_episode_steps, self.out_of_limits = max_episode_steps, out_of_limits
        self.success_threshold = success_threshold or self.dynamics.success_threshold
        self.single_observation_space = observation_space_for(self.embodiment, [self.dynamics.camera.name])
        self.single_action_space = action_space_for(self.embodiment)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = "rgb_array"
        self._real = make_real_env(self.embodiment.name)
        self._key = self.dynamics.camera.key

    def _reset_one(self, i: int, seed: int) -> None:
        obs, _ = self._real.reset(seed=seed)
        latent = self.dynamics.encode(obs[self._key][None])[0]
        state = self.dynamics.norm_state(obs["observation.state"][None], obs[self._key][None])[0]
        C = self.dynamics.context
        self._ctx[i] = torch.stack([latent] * C)
        self._ctx_state[i] = torch.stack([state] * C)
        self._frames[i], self._states[i] = obs[self._key], obs["observation.state"]
        if self._prev_actions.shape[1] == len(self._states[i]):  # at rest: the action that holds the state
            self._prev_actions[i] = self._states[i]
        self._steps[i], self._needs_reset[i] = 0, False

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        # a list of per-env seeds seeds the sampler with its first entry, so it is reproducible too
        super().reset(seed=seed if isinstance(seed, int) or seed is None else int(seed[0]))
        n, C = self.num_envs, self.dynamics.context
        if seed is None:
            seeds = [int(s) for s in self.np_random.integers(2**31, size=n)]
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(n)]
        else:
            seeds = list(seed)
        cfg = self.dynamics.model.cfg
        g = cfg.latent_size
        self._ctx = torch.zeros(n, C, 1, cfg.latent_channels, g, g)
        self._ctx_state = torch.zeros(n, C, cfg.state_dim)
        self._frames = np.zeros((n, *self.single_observation_space[self._key].shape), np.uint8)
        self._states = np.zeros((n, self.embodiment.state.dims), np.float32)
        self._steps = np.zeros(n, int)
        self._prev_actions = np.zeros((n, self.embodiment.action_dims), np.float32)
        self._needs_reset = np.zeros(n, bool)
        for i, s in enumerate(seeds):
            self._reset_one(i, s)
        self._gen = torch.Generator().manual_seed(int(self.np_random.integers(2**31)))
        return self._obs(), {}

    def _obs(self) -> dict:
        return {self._key: self._frames.copy(), "observation.state": self._states.copy()}

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"actions have batch size {actions.shape[0]}, expected num_envs={self.num_envs}")
        actions = np.stack([validate_action(self.embodiment, a, out_of_limits=self.out_of_limits, allow_chunk=False)
                            for a in actions])
        n = self.num_envs
        rewards = np.zeros(n, np.float64)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        probs = np.zeros(n)
        resetting = self._needs_reset.copy()
        for i in np.nonzero(resetting)[0]:  # next-step autoreset: this step only resets them
            self._reset_one(i, int(self.np_random.integers(2**31)))
        active = np.nonzero(~resetting)[0]
        if len(active):
            images, states, p, latent, state_pad = self.dynamics.step(
                self._ctx[active], self._ctx_state[active], actions[active], self._gen, self._prev_actions[active])
            self._prev_actions[active] = actions[active]
            self._ctx[active] = torch.cat([self._ctx[active, 1:], latent[:, None]], dim=1)
            self._ctx_state[active] = torch.cat([self._ctx_state[active, 1:], state_pad[:, None]], dim=1)
            self._frames[active], self._states[active] = images, states
            self._steps[active] += 1
            probs[active] = p
            rewards[active] = p
            terminated[active] = p >= self.success_threshold
            truncated[active] = self._steps[active] >= self.max_episode_steps
        self._needs_reset = terminated | truncated
        return self._obs(), rewards, terminated, truncated, {"success_prob": probs, "is_success": terminated.copy()}

    def render(self):
        return list(self._frames)

    def close_extras(self, **kwargs):
        self._real.close()
