"""The learned simulator: the world model's Generator as a Gymnasium environment.

A thin loop around the model's sampler (as DIAMOND's world_model_env): the last `context` frames
and states are the clean prefix, an action is the clean action token, and Euler sampling generates
the next frame latent and proprioceptive state (forward dynamics). The reasoner's judge scores the
new frame: its probability is the reward (a learned progress/coverage estimate) and `terminated`
fires when it crosses the success threshold. Observations and actions use the embodiment's LeRobot
keys and physical units; normalization happens inside.

A checkpoint with a pose dynamics head (`cosmos3-robot train-dynamics`, the shipped PushT one) steps
differently: that head predicts the next pusher position and T pose from the context states and the
action, the conv frame head draws the frame from that state (alone, with metadata renderer "state"; or
the per-pixel field renderer, renderer "field"), and the reward is the predicted T pose's goal
coverage (metadata judge "coverage").
"""

from __future__ import annotations

from collections import deque
from importlib import resources
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ..embodiments import Normalizer, load_spec, pad_action, validate_action
from ..embodiments.perception import perceive, perception_dims, pose_functions, project
from ..model import WorldModel
from ..model.frame_tokenizer import resize_frames
from .real import action_space_for, make_real_env, observation_space_for

DEFAULT_CHECKPOINT = "pusht_small"


def shipped_checkpoint(name: str = DEFAULT_CHECKPOINT) -> Path:
    """Path of a checkpoint shipped inside the package (trained by `scripts/train_pusht.sh`)."""
    path = Path(str(resources.files("cosmos3_robot") / "checkpoints" / name))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no shipped checkpoint {name!r} at {path}; train one with `cosmos3-robot train`")
    return path


def load_world_model(checkpoint=None) -> WorldModel:
    if isinstance(checkpoint, WorldModel):
        return checkpoint.eval()
    return WorldModel.from_pretrained(checkpoint or shipped_checkpoint())


class LearnedDynamics:
    """Batched model calls shared by the single and the vector env: encode frames, step, judge."""

    def __init__(self, model: WorldModel, sample_steps: int | None = None, sample_noise: float | None = None):
        self.model = model
        meta = model.metadata
        # the sampler's starting-noise scale (WorldModel.sample); a checkpoint may store its measured best
        self.sample_noise = float(meta.get("sample_noise", 1.0)) if sample_noise is None else sample_noise
        if "embodiment" not in meta or "normalizers" not in meta:
            raise ValueError("checkpoint metadata lacks 'embodiment'/'normalizers'; train it with `cosmos3-robot train`")
        self.spec = load_spec(meta["embodiment"])
        self.context = int(meta.get("context", 2))
        self.success_threshold = float(meta.get("success_threshold", 0.9))
        self.normalizers = {k: Normalizer.from_dict(d) for k, d in meta["normalizers"].items()}
        self.sample_steps = sample_steps
        self.camera = self.spec.cameras[0]
        cfg = model.cfg
        # a perceived state (e.g. the T's pose read off the frame) rides in the state token after the
        # spec's state: read from the real first frames at reset, then the model's own predictions
        self.perceived = meta.get("perceived_state")
        n_state = self.spec.state.dims + perception_dims(self.perceived)
        self.action_mask = torch.from_numpy(pad_action(np.zeros(self.spec.action_dims), cfg.action_dim)[1])
        self.state_mask = torch.from_numpy(pad_action(np.zeros(n_state), cfg.state_dim)[1])
        self.text_ids = model.tokenize_text([self.spec.task])
        # with a pose dynamics head the next state comes from it and the frames are drawn from that state;
        # judge "coverage" scores the predicted pose's goal coverage instead of the reasoner reading the frame
        self.pose_dynamics = model.pose_dynamics if meta.get("pose_dynamics") else None
        self.judge_kind = meta.get("judge", "reasoner")
        if self.judge_kind not in ("reasoner", "coverage"):
            raise ValueError(f"checkpoint metadata judge={self.judge_kind!r}; expected 'reasoner' or 'coverage'")
        # renderer "state": the conv head draws each frame from the state alone (model.render_state);
        # "field": the field renderer draws it per pixel from the pusher and the pose (model.field_renderer)
        self.renderer = meta.get("renderer")
        self.render_from_state = self.renderer in ("state", "field")
        if self.render_from_state and self.pose_dynamics is None:
            raise ValueError(f"checkpoint metadata renderer={self.renderer!r} needs a pose dynamics head (cosmos3-robot "
                             "train-dynamics) to supply the state the frames are drawn from")
        if self.renderer == "field" and model.field_renderer is None:
            raise ValueError("checkpoint metadata renderer='field' but the model has no field renderer "
                             "(field_renderer_width = 0); retrain with `cosmos3-robot train-dynamics --field-steps`")
        if self.pose_dynamics is not None or self.judge_kind == "coverage":
            self.to_pose, self.to_features, self.coverage = pose_functions(self.perceived)

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 camera frames -> (N, 1, c, h, w) latents."""
        small = resize_frames(np.asarray(frames, dtype=np.uint8), self.model.cfg.image_size)
        return self.model.frame_tokenizer.encode(torch.from_numpy(small).permute(0, 3, 1, 2))[:, None]

    @torch.no_grad()
    def judge(self, latents: torch.Tensor) -> np.ndarray:
        """Success probability (b,) of frame latents (b, 1, c, h, w) for the spec's task."""
        return torch.sigmoid(self.model.judge_logits(self.text_ids.repeat(len(latents), 1), latents)).numpy()

    def norm_state(self, state: np.ndarray, frames: np.ndarray | None = None) -> torch.Tensor:
        """Physical states (N, S) -> the model's padded state (N, state_dim); with a perceived state the
        matching camera frames (N, H, W, 3) are needed too."""
        s = self.normalizers["observation.state"].normalize(np.asarray(state, np.float64)) if self.spec.state.dims \
            else np.zeros((*np.shape(state)[:-1], 0))
        if self.perceived:
            if frames is None:
                raise ValueError(f"this checkpoint carries a perceived state ({self.perceived!r}): norm_state needs "
                                 "the camera frames that go with the states")
            s = np.concatenate([s, perceive(self.perceived, frames)], axis=-1)
        return torch.from_numpy(pad_action(s.astype(np.float32), self.model.cfg.state_dim)[0])

    def _pose_step(self, ctx_state: torch.Tensor, actions: np.ndarray, prev_actions: np.ndarray | None):
        """The pose dynamics head's next state: physical agent states (b, dims), poses (b, 3), padded state."""
        dims, state_norm = self.spec.state.dims, self.normalizers["observation.state"]
        agent = state_norm.unnormalize(ctx_state[:, -1, :dims].numpy().astype(np.float64))
        prev_agent = state_norm.unnormalize(ctx_state[:, -2 if ctx_state.shape[1] > 1 else -1, :dims].numpy()
                                            .astype(np.float64))
        pose = self.to_pose(ctx_state[:, -1, dims : dims + perception_dims(self.perceived)].numpy())
        prev = agent if prev_actions is None else np.asarray(prev_actions, np.float64)
        t = [torch.from_numpy(np.asarray(x, np.float64)).float() for x in (agent, prev_agent, actions, prev, pose)]
        next_agent, next_pose = self.pose_dynamics.step(*t)
        states = np.clip(next_agent.numpy(), self.spec.state.lower, self.spec.state.upper).astype(np.float32)
        features = project(self.perceived, self.to_features(next_pose.numpy()))
        pad = np.concatenate([state_norm.normalize(states.astype(np.float64)), features], axis=-1).astype(np.float32)
        return states, self.to_pose(features), torch.from_numpy(pad_action(pad, self.model.cfg.state_dim)[0])

    @torch.no_grad()
    def step(self, ctx_latents, ctx_state, actions: np.ndarray, generator: torch.Generator,
             prev_actions: np.ndarray | None = None):
        """ctx (b, C, 1, c, h, w), (b, C, S); actions (b, D) physical -> frames (b, H, W, 3) uint8,
        states (b, state dims), success probability (b,), next latent (b, 1, c, h, w), next padded state.
        `prev_actions` (b, D): the actions of the step before (the pose dynamics head reads them; None = the
        agent was at rest)."""
        b = len(actions)
        hint = poses = None
        if self.pose_dynamics is not None:
            pose_states, poses, hint = self._pose_step(ctx_state, actions, prev_actions)
        if self.renderer == "field":
            images = self.model.field_renderer.render(torch.from_numpy(pose_states).float(),
                                                      torch.from_numpy(poses).float(), self.camera.height)
            # nothing on this path reads frame latents (the pose head reads the states): carry the last one
            latent, state_pad = ctx_latents[:, -1], hint
        elif self.render_from_state:
            latent, state_pad = self.model.render_state(hint), hint
        else:
            a = self.normalizers["action"].normalize(np.asarray(actions, np.float64)).astype(np.float32)
            a = torch.from_numpy(pad_action(a, self.model.cfg.action_dim)[0])[:, None]
            domain = torch.full((b,), self.spec.domain_id)
            cache = self.model.encode_prefix(self.text_ids.repeat(b, 1), ctx_latents, ctx_state, domain)
            out = self.model.sample(cache, 1, 1, self.action_mask[None].repeat(b, 1),
                                    self.state_mask[None].repeat(b, 1), actions=a, steps=self.sample_steps,
                                    generator=generator, noise_scale=self.sample_noise,
                                    state_hint=None if hint is None else hint[:, None])
            latent, state_pad = out["frames"][:, 0], out["state"][:, 0]
        if self.renderer != "field":
            images = (self.model.frame_tokenizer.decode(latent[:, 0]).permute(0, 2, 3, 1).numpy() * 255).round()
            images = resize_frames(images.astype(np.uint8), self.camera.height)
        if self.judge_kind == "coverage":
            if poses is None:
                n = perception_dims(self.perceived)
                poses = self.to_pose(project(self.perceived, state_pad[:, self.spec.state.dims :][:, :n].numpy()))
            prob = self.coverage(poses).astype(np.float32)
        else:
            prob = self.judge(latent)
        if self.pose_dynamics is not None:
            return images, pose_states, prob, latent, hint
        dims = self.spec.state.dims
        states = np.zeros((b, 0), np.float32)
        if dims:
            states = self.normalizers["observation.state"].unnormalize(state_pad[:, :dims].numpy())
            states = np.clip(states, self.spec.state.lower, self.spec.state.upper).astype(np.float32)
        if self.perceived:  # the fed-back state stays physical: inside the spec's limits, valid poses
            state_pad = state_pad.clone()
            if dims:
                state_pad[:, :dims] = torch.from_numpy(
                    self.normalizers["observation.state"].normalize(states.astype(np.float64)).astype(np.float32))
            n = perception_dims(self.perceived)
            state_pad[:, dims : dims + n] = torch.from_numpy(project(self.perceived, state_pad[:, dims : dims + n].numpy()))
        return images, states, prob, latent, state_pad


class WorldModelEnv(gym.Env):
    """`gymnasium.make("cosmos3_robot/PushT-v0")`: the learned PushT simulator (see module docstring).

    reset options (at most one source of the first frame):
      - `observation`: a real observation dict (LeRobot keys); `frames` (+ `state`): uint8 frames
        (H, W, 3) or (C, H, W, 3) and states; `episode` (+ `start`): an episode from `load_episodes`;
      - nothing: reset the embodiment's real simulator with the same seed and start from its frame
        (same seed -> same first frame in both);
      - `instruction`: the task text (default: the spec's task).
    A chunk action (T, D) runs T steps and returns the last frame; `info["frames"]` holds all."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, checkpoint=None, max_episode_steps: int = 300, sample_steps: int | None = None,
                 success_threshold: float | None = None, render_mode: str = "rgb_array", out_of_limits: str = "clip",
                 sample_noise: float | None = None):
        self.dynamics = LearnedDynamics(load_world_model(checkpoint), sample_steps, sample_noise)
        self.embodiment = self.dynamics.spec
        self.metadata = {**self.metadata, "render_fps": self.embodiment.video_fps}
        self.success_threshold = success_threshold or self.dynamics.success_threshold
        self.max_episode_steps, self.render_mode, self.out_of_limits = max_episode_steps, render_mode, out_of_limits
        self.observation_space = observation_space_for(self.embodiment, [self.dynamics.camera.name])
        self.action_space = action_space_for(self.embodiment)
        self._real = None
        self._last = None

    def _first_observation(self, seed, options: dict) -> tuple[np.ndarray, np.ndarray]:
        """(C', H, W, 3) frames and (C', S) states to start from."""
        key = self.dynamics.camera.key
        if "observation" in options:
            obs = options["observation"]
            return np.asarray(obs[key])[None], np.asarray(obs["observation.state"], np.float32)[None]
        if "frames" in options:
            frames = np.asarray(options["frames"], dtype=np.uint8)
            frames = frames[None] if frames.ndim == 3 else frames
            state = np.asarray(options.get("state", np.zeros(self.embodiment.state.dims)), np.float32)
            state = np.broadcast_to(state if state.ndim == 2 else state[None], (len(frames), state.shape[-1]))
            return frames, state
        if "episode" in options:
            ep, t = options["episode"], int(options.get("start", 0))
            lo = max(0, t - self.dynamics.context + 1)
            return ep["frames"][key][lo : t + 1], ep["state"][lo : t + 1]
        if self._real is None:
            self._real = make_real_env(self.embodiment.name)
        obs, _ = self._real.reset(seed=seed)
        return obs[key][None], obs["observation.state"][None]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        frames, states = self._first_observation(seed, options)
        if frames.shape[1:] != self.observation_space[self.dynamics.camera.key].shape:
            raise ValueError(f"reset frames have shape {frames.shape[1:]}, expected "
                             f"{self.observation_space[self.dynamics.camera.key].shape} for {self.dynamics.camera.key}")
        C = self.dynamics.context
        latents = self.dynamics.encode(frames)
        padded = self.dynamics.norm_state(states, frames)
        # before the start the first frame repeats, as in training windows
        self._ctx = deque([latents[0]] * (C - len(frames)) + list(latents[-C:]), maxlen=C)
        self._ctx_state = deque([padded[0]] * (C - len(frames)) + list(padded[-C:]), maxlen=C)
        self._gen = torch.Generator().manual_seed(int(self.np_random.integers(2**31)))
        self._steps = 0
        self._prev_action = None  # the agent starts at rest
        self._last = {self.dynamics.camera.key: frames[-1].copy(), "observation.state": states[-1].astype(np.float32)}
        return self._last, {"success_prob": 0.0, "is_success": False}

    def step(self, action):
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        action = validate_action(self.embodiment, action, out_of_limits=self.out_of_limits)
        chunk = action[None] if action.ndim == 1 else action
        frames, success, prob = [], False, 0.0
        for a in chunk:
            ctx = torch.stack(list(self._ctx))[None]
            ctx_state = torch.stack(list(self._ctx_state))[None]
            images, states, probs, latent, state_pad = self.dynamics.step(ctx, ctx_state, a[None], self._gen,
                                                                          self._prev_action)
            self._prev_action = a[None]
            self._ctx.append(latent[0])
            self._ctx_state.append(state_pad[0])
            self._steps += 1
            prob = float(probs[0])
            success = success or prob >= self.success_threshold
            frames.append(images[0])
            self._last = {self.dynamics.camera.key: images[0], "observation.state": states[0]}
        info = {"success_prob": prob, "is_success": success, "frames": np.stack(frames)}
        return self._last, prob, success, self._steps >= self.max_episode_steps, info

    def render(self):
        return None if self._last is None else self._last[self.dynamics.camera.key].copy()

    def close(self):
        if self._real is not None:
            self._real.close()
