"""The policy head of a structured checkpoint as an agent: each observation is perceived as the learned env
perceives its first frames (the task's `perceive`), the task's policy head (`act`: the Generator tower in
policy mode) samples an action chunk, and the first `n_action_steps` of it are played, LeRobot-style
(default: the head's own `n_action_steps`).
With `candidates=K` (default: the head's own), each call samples K chunks, rolls each through the same
checkpoint's dynamics and keeps the one whose imagined states earn the most of the task's reward: the
world model plans with what it imagines (model-predictive selection over its own samples). `horizon=H` scores
only the chunk's first H imagined steps; `draws=M` imagines each candidate M times on independent noise and
scores it by the worst (pessimistic planning: a chunk that wins only on some of the model's futures loses).
With `imagine=True` the same checkpoint's dynamics and renderer also roll the chunk forward from what the
policy sees, so each chunk comes with the states and frames the model expects (`imagined`): one model that
both acts and imagines what its action will do."""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..backends import load_backend
from ..backends.structured import advance
from ..errors import UserError


class StructuredPolicy:
    def __init__(self, checkpoint, n_action_steps: int | None = None, flow_steps: int | None = None,
                 seed: int = 0, imagine: bool = False, candidates: int | None = None, horizon: int | None = None,
                 draws: int | None = None, name: str = "world-model"):
        self.backend = checkpoint if not isinstance(checkpoint, str) else load_backend(checkpoint)
        task = self.backend.task
        if getattr(task, "policy", None) is None or not hasattr(task, "act"):
            raise UserError(f"checkpoint {checkpoint!r} has no policy head; train one with `cosmos3-robot "
                             "train-policy` or name a checkpoint that has one")
        self.task, self.spec = task, self.backend.spec
        chunk = task.policy.cfg.chunk
        self.n_action_steps = n_action_steps or task.policy.cfg.n_action_steps
        if not 1 <= self.n_action_steps <= chunk:
            raise UserError(f"n_action_steps={self.n_action_steps}: this policy head predicts chunks of {chunk}; "
                             f"play 1..{chunk} of each")
        self.candidates = candidates or getattr(task.policy.cfg, "candidates", 1)
        if self.candidates < 1:
            raise UserError(f"candidates={candidates}: sample at least 1 chunk per call")
        self.horizon = horizon or getattr(task.policy.cfg, "horizon", 0) or chunk
        if not 1 <= self.horizon <= chunk:
            raise UserError(f"horizon={self.horizon}: this policy head predicts chunks of {chunk}; imagine 1..{chunk} "
                             "steps of each")
        self.draws = draws or getattr(task.policy.cfg, "draws", 1)
        if self.draws < 1:
            raise UserError(f"draws={draws}: imagine each candidate at least once")
        self.flow_steps, self.imagine, self.name, self._seed = flow_steps, imagine, name, seed
        self.imagined: dict | None = None  # per chunk: "actions" (n, A), "states" (n, S), "frames" camera -> (n, H, W, 3)
        self.plans: list[tuple[int, dict]] = []  # with imagine: (the step the chunk starts at, its `imagined`)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._queue: deque = deque()
        self._world: deque = deque(maxlen=max(2, self.backend.history))
        self._last = self._prev = None
        self.imagined, self.plans, self._calls = None, [], 0
        self._gen = torch.Generator().manual_seed(self._seed if seed is None else seed)
        # the imagined track's own stream: seeded, and apart from the one the actions are drawn from
        self._dream = torch.Generator().manual_seed(self._seed if seed is None else seed)

    def _perceive(self, observation: dict) -> np.ndarray:
        frames = {cam.name: np.asarray(observation[cam.key])[None] for cam in self.spec.cameras if cam.key in observation}
        state = np.asarray(observation["observation.state"], np.float32)[None]
        return self.task.perceive(frames, state)[0]

    def select_action(self, observation: dict) -> np.ndarray:
        world = self._perceive(observation)
        if not self._world:  # the first step: at rest, as the learned env starts
            self._last = self._prev = self.task.rest_actions(world[None])[0]
            self._world.append(world)
        self._world.append(world)
        if not self._queue:
            history = np.stack(list(self._world))[None]
            chunk = self._choose(history) if self.candidates > 1 else \
                self.task.act(history, self._last[None], self._prev[None], self.flow_steps, self._gen)[0]
            plan = chunk[: self.n_action_steps].astype(np.float32)
            self._queue.extend(plan)
            if self.imagine:
                self.imagined = self._imagine(history, plan)
                self.plans.append((self._calls, self.imagined))
        self._calls += 1
        action = self._queue.popleft()
        self._prev, self._last = self._last, action
        return action

    def _choose(self, history: np.ndarray) -> np.ndarray:
        """Sample `candidates` chunks, roll the first `horizon` actions of each through the checkpoint's own
        dynamics `draws` times (sampled as the learned env steps, each draw on its own noise) and keep the chunk
        whose worst draw earns the most of the task's reward (summed over the horizon); ties keep the first
        sample, so a flat reward leaves the plain policy."""
        K, M, H = self.candidates, self.draws, self.horizon
        hist = np.repeat(history, K, 0)
        last, prev = np.repeat(self._last[None], K, 0), np.repeat(self._prev[None], K, 0)
        chunks = self.task.act(hist, last, prev, self.flow_steps, self._gen)
        rows = K * M  # each candidate's M draws side by side
        worlds = self._roll(np.repeat(hist, M, 0), np.repeat(chunks[:, :H], M, 0), np.repeat(last, M, 0),
                            noise=lambda shape: torch.randn((rows, *shape), generator=self._gen))
        score = sum(self.task.reward(worlds[:, k]) for k in range(H))
        return chunks[int(np.argmax(np.asarray(score).reshape(K, M).min(1)))]

    def _imagine(self, history: np.ndarray, plan: np.ndarray) -> dict:
        """Roll the planned actions through the checkpoint's own dynamics (sampled as the learned env steps, from
        the policy's own seeded stream) and draw them."""
        noise = lambda shape: torch.randn((1, *shape), generator=self._dream)  # noqa: E731
        worlds = self._roll(history, plan[None], self._last[None], noise)[0]
        return {"actions": plan, "states": self.task.observe(worlds), "frames": self.task.render(worlds)}

    def _roll(self, history: np.ndarray, chunks: np.ndarray, last: np.ndarray, noise=None) -> np.ndarray:
        """History (B, T, W), action chunks (B, H, A) and the actions that led to the history's end (B, A) ->
        the imagined worlds (B, H, W), stepped as the learned env steps (`advance`)."""
        worlds = []
        for k in range(chunks.shape[1]):
            nxt, history, _ = advance(self.task, history, chunks[:, k], last, noise)
            worlds.append(nxt)
            last = chunks[:, k]
        return np.stack(worlds, 1)


def imagined_track(plans: list[tuple[int, dict]], first: dict[str, np.ndarray], first_state: np.ndarray,
                   length: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A policy's `plans` -> per step 0..length-1 what it imagined it would see there when it planned the chunk
    that leads there (step 0: the real first observation `first` camera -> (H, W, 3) and `first_state`):
    camera -> (length, H, W, 3) frames and (length, S) states, side by side with the real rollout."""
    frames = {cam: np.repeat(np.asarray(f)[None], length, 0) for cam, f in first.items()}
    states = np.repeat(np.asarray(first_state, np.float32)[None], length, 0)
    for start, plan in plans:
        for k in range(len(plan["actions"])):
            t = start + k + 1
            if t < length:
                states[t] = plan["states"][k]
                for cam in frames:
                    if cam in plan["frames"]:
                        frames[cam][t] = plan["frames"][cam][k]
    return frames, states
