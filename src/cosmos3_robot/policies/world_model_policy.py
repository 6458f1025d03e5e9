"""The world model's policy head as an agent: the Generator in policy mode (context frames +
instruction -> an action chunk, and the imagined future frames with it), LeRobot-style action
queue of `n_action_steps`."""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..envs.world_model_env import LearnedDynamics, load_world_model


class WorldModelPolicy:
    def __init__(self, checkpoint=None, chunk: int = 4, n_action_steps: int | None = None,
                 sample_steps: int | None = None, seed: int = 0, name: str = "world-model-policy"):
        self.dynamics = LearnedDynamics(load_world_model(checkpoint), sample_steps)
        self.spec = self.dynamics.spec
        self.chunk, self.n_action_steps = chunk, n_action_steps or chunk
        self.name, self._seed = name, seed
        self.imagined: np.ndarray | None = None  # (chunk, H, W, 3) frames the model expects to see
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._queue: deque = deque()
        self._ctx: deque = deque(maxlen=self.dynamics.context)
        self._ctx_state: deque = deque(maxlen=self.dynamics.context)
        self._gen = torch.Generator().manual_seed(self._seed if seed is None else seed)

    @torch.no_grad()
    def select_action(self, observation: dict) -> np.ndarray:
        d = self.dynamics
        latent = d.encode(np.asarray(observation[d.camera.key])[None])[0]
        state = d.norm_state(np.asarray(observation["observation.state"])[None],
                             np.asarray(observation[d.camera.key])[None])[0]
        while len(self._ctx) < d.context:  # first call: the first frame repeats, as in training
            self._ctx.append(latent)
            self._ctx_state.append(state)
        self._ctx.append(latent)
        self._ctx_state.append(state)
        if not self._queue:
            model = d.model
            domain = torch.full((1,), self.spec.domain_id)
            cache = model.encode_prefix(d.text_ids, torch.stack(list(self._ctx))[None],
                                        torch.stack(list(self._ctx_state))[None], domain)
            out = model.sample(cache, self.chunk, 1, d.action_mask[None], d.state_mask[None], steps=d.sample_steps,
                               generator=self._gen)
            actions = out["actions"][0, :, : self.spec.action_dims].numpy()
            actions = d.normalizers["action"].unnormalize(actions)
            actions = np.clip(actions, self.spec.action.lower, self.spec.action.upper).astype(np.float32)
            frames = model.frame_tokenizer.decode(out["frames"][0, :, 0]).permute(0, 2, 3, 1).numpy()
            self.imagined = (frames * 255).round().astype(np.uint8)
            self._queue.extend(actions[: self.n_action_steps])
        return self._queue.popleft()
