"""The world model's policy head as an agent: the Generator in policy mode (context frames +
instruction -> an action chunk, and the imagined future frames with it), LeRobot-style action
queue of `n_action_steps`."""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..backends.mot import MoTCodec
from ..backends.registry import checkpoint_path
from ..model import WorldModel


class WorldModelPolicy:
    def __init__(self, checkpoint, chunk: int = 4, n_action_steps: int | None = None,
                 sample_steps: int | None = None, seed: int = 0, name: str = "world-model-policy"):
        model = checkpoint if isinstance(checkpoint, WorldModel) else WorldModel.from_pretrained(checkpoint_path(checkpoint))
        self.codec = MoTCodec(model.eval())
        self.spec = self.codec.spec
        self.chunk, self.n_action_steps = chunk, n_action_steps or chunk
        self.sample_steps = sample_steps
        self.name, self._seed = name, seed
        self.imagined: np.ndarray | None = None  # (chunk, H, W, 3) first-camera frames the model expects to see
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._queue: deque = deque()
        self._ctx: deque = deque(maxlen=self.codec.history)
        self._ctx_state: deque = deque(maxlen=self.codec.history)
        self._gen = torch.Generator().manual_seed(self._seed if seed is None else seed)

    @torch.no_grad()
    def select_action(self, observation: dict) -> np.ndarray:
        c = self.codec
        frames = {cam: np.asarray(observation[self.spec.camera(cam).key])[None] for cam in c.cameras}
        latent = c.encode(frames)[0]
        state = c.norm_state(np.asarray(observation["observation.state"])[None], frames)[0]
        while len(self._ctx) < c.history:  # first call: the first frame repeats, as in training
            self._ctx.append(latent)
            self._ctx_state.append(state)
        self._ctx.append(latent)
        self._ctx_state.append(state)
        if not self._queue:
            model = c.model
            domain = torch.full((1,), self.spec.domain_id)
            cache = model.encode_prefix(c.text_ids(observation.get("task"), 1), torch.stack(list(self._ctx))[None],
                                        torch.stack(list(self._ctx_state))[None], domain)
            out = model.sample(cache, self.chunk, len(c.cameras), c.action_mask[None], c.state_mask[None],
                               steps=self.sample_steps, generator=self._gen)
            actions = out["actions"][0, :, : self.spec.action_dims].numpy()
            actions = c.normalizers["action"].unnormalize(actions)
            actions = np.clip(actions, self.spec.action.lower, self.spec.action.upper).astype(np.float32)
            self.imagined = c.decode(out["frames"][0, :, :])[c.cameras[0]]
            self._queue.extend(actions[: self.n_action_steps])
        return self._queue.popleft()
