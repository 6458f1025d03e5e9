"""The MoT backend: the Cosmos-style transformer on frames as a learned simulator (forward dynamics).

The last `history` frames (every camera, as views) and states are the clean prefix, the action is the
clean action token, and Euler sampling of the rectified flow generates the next frame latents and
state; the Reasoner's judge scores the new frames for the instruction (its probability is the reward).
Frames of any size are resized to the model's square input and back to each camera's resolution."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...embodiments import Normalizer, load_spec, pad_action
from ...embodiments.perception import perceive, perception_dims, project
from ...model import WorldModel
from ...datasets.video import resize_to
from ..base import Context, Prediction, Session, pad_history, session_seeds
from ...errors import UserError


class MoTCodec:
    """Between physical observations and the world model's inputs: frame latents per camera view,
    normalized padded states and actions, the instruction's tokens. Shared by the MoT backend and the
    world-model policy head."""

    def __init__(self, model: WorldModel):
        meta = model.metadata
        if "embodiment" not in meta or "normalizers" not in meta:
            raise UserError("checkpoint metadata lacks 'embodiment'/'normalizers'; train it with `cosmos3-robot train`")
        self.model = model
        self.spec = load_spec(meta["embodiment"])
        self.history = int(meta.get("context", 2))
        self.normalizers = {k: Normalizer.from_dict(d) for k, d in meta["normalizers"].items()}
        self.cameras = tuple(meta.get("cameras") or [self.spec.cameras[0].name])
        self.perceived = meta.get("perceived_state")
        cfg = model.cfg
        n_state = self.spec.state.dims + perception_dims(self.perceived)
        self.action_mask = torch.from_numpy(pad_action(np.zeros(self.spec.action_dims), cfg.action_dim)[1])
        self.state_mask = torch.from_numpy(pad_action(np.zeros(n_state), cfg.state_dim)[1])

    def text_ids(self, instruction: str | None, batch: int) -> torch.Tensor:
        return self.model.tokenize_text([instruction or self.spec.task]).repeat(batch, 1)

    @torch.no_grad()
    def encode(self, frames: dict[str, np.ndarray]) -> torch.Tensor:
        """camera -> (N, H, W, 3) uint8 -> latents (N, views, c, h, w)."""
        size = self.model.cfg.image_size
        views = []
        for cam in self.cameras:
            small = resize_to(np.asarray(frames[cam], np.uint8), size, size)
            views.append(self.model.frame_tokenizer.encode(torch.from_numpy(small).permute(0, 3, 1, 2)))
        return torch.stack(views, dim=1)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> dict[str, np.ndarray]:
        """(N, views, c, h, w) -> camera -> (N, H, W, 3) uint8 at the camera's resolution."""
        out = {}
        for v, cam in enumerate(self.cameras):
            x = self.model.frame_tokenizer.decode(latents[:, v]).permute(0, 2, 3, 1).numpy()
            c = self.spec.camera(cam)
            out[cam] = resize_to((x * 255).round().astype(np.uint8), c.height, c.width)
        return out

    def norm_state(self, state: np.ndarray, frames: dict[str, np.ndarray] | None = None) -> torch.Tensor:
        """(N, S) physical -> (N, state_dim) padded; a perceived state is read off the first camera's frames."""
        s = self.normalizers["observation.state"].normalize(np.asarray(state, np.float64)) if self.spec.state.dims \
            else np.zeros((*np.shape(state)[:-1], 0))
        if self.perceived:
            if frames is None:
                raise UserError(f"this checkpoint carries a perceived state ({self.perceived!r}): norm_state needs "
                                 "the camera frames that go with the states")
            s = np.concatenate([s, perceive(self.perceived, frames[self.cameras[0]])], axis=-1)
        return torch.from_numpy(pad_action(s.astype(np.float32), self.model.cfg.state_dim)[0])

    def norm_actions(self, actions: np.ndarray) -> torch.Tensor:
        a = self.normalizers["action"].normalize(np.asarray(actions, np.float64)).astype(np.float32)
        return torch.from_numpy(pad_action(a, self.model.cfg.action_dim)[0])

    def physical_state(self, state_pad: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """The model's padded state (B, state_dim) -> physical robot state (B, S) clipped to the spec's limits,
        and the padded state to feed back (clipped likewise, a perceived state projected to a valid one)."""
        dims, b = self.spec.state.dims, len(state_pad)
        states = np.zeros((b, 0), np.float32)
        if dims:
            states = self.normalizers["observation.state"].unnormalize(state_pad[:, :dims].numpy())
            states = np.clip(states, self.spec.state.lower, self.spec.state.upper).astype(np.float32)
        if self.perceived:
            state_pad = state_pad.clone()
            if dims:
                state_pad[:, :dims] = torch.from_numpy(
                    self.normalizers["observation.state"].normalize(states.astype(np.float64)).astype(np.float32))
            n = perception_dims(self.perceived)
            state_pad[:, dims : dims + n] = torch.from_numpy(project(self.perceived, state_pad[:, dims : dims + n].numpy()))
        return states, state_pad


class MoTBackend:
    """A `Backend` around a `WorldModel` checkpoint (forward dynamics; the judge's probability is the reward)."""

    def __init__(self, model: WorldModel, sample_steps: int | None = None, sample_noise: float | None = None):
        self.model = model.eval()
        self.codec = MoTCodec(model)
        meta = model.metadata
        if meta.get("judge", "reasoner") != "reasoner":
            raise UserError(f"checkpoint metadata judge={meta['judge']!r}; the MoT backend judges with the "
                             "Reasoner ('reasoner')")
        self.spec, self.cameras, self.history = self.codec.spec, self.codec.cameras, self.codec.history
        self.success_threshold = float(meta.get("success_threshold", 0.9))
        self.sample_steps = sample_steps
        # the sampler's starting-noise scale (WorldModel.sample); a checkpoint may store its measured best
        self.sample_noise = float(meta.get("sample_noise", 1.0)) if sample_noise is None else float(sample_noise)

    @classmethod
    def load(cls, directory, sample_steps: int | None = None, sample_noise: float | None = None) -> MoTBackend:
        return cls(WorldModel.from_pretrained(directory), sample_steps, sample_noise)

    def save(self, directory) -> None:
        self.model.save_pretrained(directory)

    def reset(self, ctx: Context, seed: int | Sequence[int] | None = None) -> Session:
        B, T = ctx.batch, ctx.history
        flat = {cam: np.asarray(ctx.frames[cam]).reshape(B * T, *np.shape(ctx.frames[cam])[2:]) for cam in self.cameras}
        z = self.codec.encode(flat)
        latents = z.reshape(B, T, *z.shape[1:])
        state = self.codec.norm_state(np.asarray(ctx.state).reshape(B * T, -1), flat).reshape(B, T, -1)
        idx = pad_history(np.arange(T)[None], self.history)[0]  # the first step repeats before the start
        gen = torch.Generator().manual_seed(int(session_seeds(seed, ctx.batch)[0]))  # one stream for the batch
        return Session({"latents": latents[:, idx].contiguous(), "state": state[:, idx].contiguous()}, gen,
                       ctx.instruction)

    @torch.no_grad()
    def step(self, session: Session, actions: np.ndarray) -> Prediction:
        ctx, ctx_state = session.data["latents"], session.data["state"]
        b = len(actions)
        domain = torch.full((b,), self.spec.domain_id)
        text = self.codec.text_ids(session.instruction, b)
        cache = self.model.encode_prefix(text, ctx, ctx_state, domain)
        out = self.model.sample(cache, 1, len(self.cameras), self.codec.action_mask[None].repeat(b, 1),
                                self.codec.state_mask[None].repeat(b, 1),
                                actions=self.codec.norm_actions(actions)[:, None], steps=self.sample_steps,
                                generator=session.generator, noise_scale=self.sample_noise)
        latent, state_pad = out["frames"][:, 0], out["state"][:, 0]
        states, state_pad = self.codec.physical_state(state_pad)
        session.data["latents"] = torch.cat([ctx[:, 1:], latent[:, None]], dim=1)
        session.data["state"] = torch.cat([ctx_state[:, 1:], state_pad[:, None]], dim=1)
        prob = torch.sigmoid(self.model.judge_logits(text, latent)).numpy().astype(np.float64)
        return Prediction(frames=self.codec.decode(latent), state=states, reward=prob,
                          success=prob >= self.success_threshold)
