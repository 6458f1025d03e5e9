"""Training: frame tokenizer, then the world model in all modes, then the success/progress judge.

Seeded, with a progress bar, periodic checkpoints (`save_pretrained` + `trainer_state.pt`) and
resume after a kill; a loss log in `losses.jsonl`. Under `torchrun --nproc_per_node N` it trains
with DistributedDataParallel (gloo on CPU); rank 0 writes the checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..datasets import dataset_normalizers, load_episodes
from ..datasets.lerobot_io import dataset_embodiment
from ..embodiments import load_spec, pad_action
from ..embodiments.perception import perceive, perception_dims
from .fit import JsonlLogger, fit
from .schedule import warmup_cosine
from ..model.config import get_config
from ..model.frame_tokenizer import FrameAutoencoder, foreground, resize_frames, to_float_frames
from ..model.world_model import MODE_PROBS, WorldModel
from ..errors import UserError

STATE_FILE = "trainer_state.pt"


@dataclass
class TrainConfig:
    dataset: str
    out: str
    embodiment: str = ""  # "": the dataset's (datasets.dataset_embodiment)
    preset: str = "small"
    context: int = 2  # context frames per window (the learned env's window)
    tokenizer_steps: int = 1500
    tokenizer_batch: int = 32
    tokenizer_detail_weight: float = 0.0  # extra tokenizer loss weight on non-background pixels
    steps: int = 3000  # world-model steps
    judge_steps: int = 300  # head-only fine-tune after joint training
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    save_every: int = 250
    success_threshold: float = 0.90  # PushT coverage counted as success (the env's default)
    init: str | None = None  # start from this checkpoint's weights (tokenizer kept, its stage skipped)
    residual_frames: bool | None = None  # override the preset's ModelConfig.residual_frames
    context_noise: float = 0.0  # max scale of the noise that corrupts training context (WorldModel.flow_loss)
    sample_noise: float = 1.0  # the learned env's starting-noise scale (WorldModel.sample), stored in metadata
    judge_imagined: float = 0.0  # judge stage: this fraction of frames are the model's own one-step predictions
    action_to_frames: bool = False  # add the direct action -> frame-token path (ModelConfig.action_to_frames)
    frame_prediction: str | None = None  # override ModelConfig.frame_prediction ("velocity" or "x0")
    motion_weight: float = 0.0  # extra frame-loss weight on changing latents (WorldModel.flow_loss)
    forward_share: float | None = None  # fraction of forward-dynamics examples (None: MODE_PROBS)
    time_shift: float | None = None  # override ModelConfig.time_shift (> 1 trains more near pure noise)
    frame_pos_embed: bool = False  # add the absolute frame-token position embedding (ModelConfig.frame_pos_embed)
    frame_t1_share: float = 0.0  # fraction of examples with frames at pure noise (WorldModel.flow_loss)
    sample_steps: int | None = None  # override ModelConfig.sample_steps (the learned env's Euler steps)
    frame_head: str | None = None  # override ModelConfig.frame_head ("linear" or "conv"; a new head starts fresh)
    rollout_steps: int = 0  # train on the model's own context: unroll this many steps first (_Objective)
    rollout_share: float = 0.5  # fraction of examples whose context is the model's own rollout
    perceive_state: str | None = None  # append this perceived state to the model's state (embodiments.perception)
    conv_head_state: int | None = None  # override ModelConfig.conv_head_state (the conv head draws from state)
    hint_teacher: float = 0.5  # with conv_head_state: fraction of examples whose head reads the true state
    hint_noise: float = 0.01  # ... plus Gaussian noise of this std (normalized units)
    state_weight: float = 1.0  # state-loss weight (WorldModel.flow_loss)
    render_steps: int = 0  # conv-head renderer pretraining before the world-model stage (WorldModel.render_loss)
    state_geometry: str | None = None  # override ModelConfig.state_geometry (how the conv head draws the state)
    residual_state: bool | None = None  # override ModelConfig.residual_state
    overwrite: bool = False  # replace a finished checkpoint at `out` (an interrupted run there is resumed instead)
    progress: bool = True


class LatentData:
    """Every episode's frames encoded once; samples (context, action, next frame) windows."""

    def __init__(self, model: WorldModel, episodes: list[dict], spec, normalizers, context: int, camera: str,
                 perceived: str | None = None):
        self.context = context
        lat, state, action, reward, ep_of, t_of = [], [], [], [], [], []
        with torch.no_grad():
            for e, ep in enumerate(episodes):
                frames = torch.from_numpy(resize_frames(ep["frames"][camera], model.cfg.image_size)).permute(0, 3, 1, 2)
                lat.append(torch.cat([model.frame_tokenizer.encode(frames[i : i + 256])
                                      for i in range(0, len(frames), 256)]))
                s = normalizers["observation.state"].normalize(ep["state"]) if ep["state"] is not None else \
                    np.zeros((len(frames), 0))
                if perceived:  # e.g. the T's pose read off each frame, after the proprioceptive state
                    s = np.concatenate([s, perceive(perceived, ep["frames"][camera])], axis=1)
                state.append(pad_action(s.astype(np.float32), model.cfg.state_dim)[0])
                action.append(pad_action(normalizers["action"].normalize(ep["action"]).astype(np.float32),
                                         model.cfg.action_dim)[0])
                reward.append(ep["reward"])
                ep_of.append(np.full(len(frames), e))
                t_of.append(np.arange(len(frames)))
        self.latents = torch.cat(lat)[:, None]  # (N, v=1, c, h, w)
        self.state = torch.from_numpy(np.concatenate(state))
        self.action = torch.from_numpy(np.concatenate(action))
        self.reward = torch.from_numpy(np.concatenate(reward).astype(np.float32))
        ep_of, t_of = np.concatenate(ep_of), np.concatenate(t_of)
        self.start = torch.from_numpy(np.concatenate([[0], np.cumsum([len(e["action"]) for e in episodes])[:-1]])[ep_of])
        # a window at global index i needs the next frame i+1 inside the same episode
        self.valid = torch.from_numpy(np.nonzero(np.append(ep_of[1:] == ep_of[:-1], False))[0])
        n_state = spec.state.dims + perception_dims(perceived)
        self.state_mask = torch.from_numpy(pad_action(np.zeros(n_state), model.cfg.state_dim)[1])
        self.action_mask = torch.from_numpy(pad_action(np.zeros(spec.action.dims), model.cfg.action_dim)[1])
        self.text_ids = model.tokenize_text([episodes[0]["task"]])[0]
        self.domain = spec.domain_id

    def batch(self, b: int, gen: torch.Generator, history: int = 0) -> dict:
        """`b` random windows. With `history` > 0 also the real context `history` steps earlier
        ("roll_latents", "roll_state") and the actions from there to the window ("roll_actions"), for
        windows with that much episode before them ("roll_ok")."""
        i = self.valid[torch.randint(len(self.valid), (b,), generator=gen)]
        start = self.start[i][:, None]
        ctx = torch.maximum(i[:, None] + torch.arange(-self.context + 1, 1)[None], start)
        roll = {}
        if history > 0:
            early = i[:, None] + torch.arange(-history - self.context + 1, -history + 1)[None]
            roll = {"roll_ok": early[:, 0] >= start[:, 0], "roll_latents": self.latents[torch.maximum(early, start)],
                    "roll_state": self.state[torch.maximum(early, start)],
                    "roll_actions": self.action[torch.maximum(i[:, None] + torch.arange(-history, 0)[None], start)]}
        return roll | {
            "text_ids": self.text_ids[None].repeat(b, 1),
            "ctx_latents": self.latents[ctx], "ctx_state": self.state[ctx],
            "fut_latents": self.latents[i + 1][:, None], "fut_state": self.state[i + 1][:, None],
            "actions": self.action[i][:, None],
            "action_mask": self.action_mask[None].repeat(b, 1), "state_mask": self.state_mask[None].repeat(b, 1),
            "domain": torch.full((b,), self.domain), "reward": self.reward[i],
        }


GROWN_PARTS = ("action_to_frames", "frame_pos_embed")  # ModelConfig switches that add modules


def model_overrides(cfg: TrainConfig) -> dict:
    """The ModelConfig fields a TrainConfig sets (unset ones keep the preset's or the --init checkpoint's)."""
    out = {k: getattr(cfg, k) for k in ("residual_frames", "time_shift", "sample_steps", "frame_prediction",
                                        "frame_head", "conv_head_state", "state_geometry", "residual_state")
           if getattr(cfg, k) is not None}
    return out | {k: True for k in GROWN_PARTS if getattr(cfg, k)}


def mode_probs(forward_share: float | None) -> tuple[float, ...]:
    """Training-mode mix with the forward-dynamics share set to `forward_share` and the other modes
    keeping their relative weights from MODE_PROBS."""
    if forward_share is None:
        return MODE_PROBS
    if not 0.0 <= forward_share <= 1.0:
        raise UserError(f"forward_share={forward_share} must be in [0, 1]")
    rest = sum(MODE_PROBS[1:])
    return (forward_share, *[p / rest * (1 - forward_share) for p in MODE_PROBS[1:]])


class _Objective(nn.Module):
    """DDP needs the loss inside `forward`; this routes to the world model's two objectives."""

    def __init__(self, model: WorldModel, context_noise: float = 0.0, judge_imagined: float = 0.0,
                 sample_noise: float = 1.0, motion_weight: float = 0.0, forward_share: float | None = None,
                 frame_t1_share: float = 0.0, rollout_steps: int = 0, rollout_share: float = 0.5,
                 hint_teacher: float = 0.5, hint_noise: float = 0.01, state_weight: float = 1.0):
        super().__init__()
        self.hint_teacher, self.hint_noise, self.state_weight = hint_teacher, hint_noise, state_weight
        self.model = model
        self.rollout_steps, self.rollout_share = rollout_steps, rollout_share
        self.context_noise, self.judge_imagined, self.sample_noise = context_noise, judge_imagined, sample_noise
        self.motion_weight, self.frame_t1_share = motion_weight, frame_t1_share
        self.mode_probs = mode_probs(forward_share)

    @torch.no_grad()
    def imagined_next(self, batch: dict, gen: torch.Generator) -> torch.Tensor:
        """The model's own forward-dynamics prediction of the next frame latent (b, v, c, h, w), sampled
        as the learned env samples it."""
        m = self.model
        cache = m.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
        return m.sample(cache, 1, batch["ctx_latents"].shape[2], batch["action_mask"], batch["state_mask"],
                        actions=batch["actions"], generator=gen, noise_scale=self.sample_noise)["frames"][:, 0]

    @torch.no_grad()
    def own_context(self, batch: dict, gen: torch.Generator) -> dict:
        """The batch with the context of a `rollout_share` fraction of its windows replaced by the model's
        own rollout: from the real context `rollout_steps` earlier, the recorded actions are imagined
        forward as the learned env does, and the window's real next frame stays the target. The model
        learns to pull its own drifted frames back to the data (the pushforward trick: Brandstetter et
        al. 2022), which context noise imitates only with white noise."""
        m, C = self.model, batch["ctx_latents"].shape[1]
        draw = torch.rand(len(batch["roll_ok"]), generator=gen).to(batch["roll_ok"].device)
        use = torch.nonzero(batch["roll_ok"] & (draw < self.rollout_share))[:, 0]
        if len(use) == 0:
            return batch
        sub = {k: batch[k][use] for k in ("text_ids", "domain", "action_mask", "state_mask", "roll_actions")}
        ctx, state = batch["roll_latents"][use], batch["roll_state"][use]
        for k in range(sub["roll_actions"].shape[1]):  # only the windows that use it are imagined
            cache = m.encode_prefix(sub["text_ids"], ctx[:, -C:], state[:, -C:], sub["domain"])
            out = m.sample(cache, 1, ctx.shape[2], sub["action_mask"], sub["state_mask"],
                           actions=sub["roll_actions"][:, k : k + 1], generator=gen, noise_scale=self.sample_noise)
            ctx, state = torch.cat([ctx, out["frames"]], 1), torch.cat([state, out["state"]], 1)
        ctx_latents, ctx_state = batch["ctx_latents"].clone(), batch["ctx_state"].clone()
        ctx_latents[use], ctx_state[use] = ctx[:, -C:], state[:, -C:]
        return batch | {"ctx_latents": ctx_latents, "ctx_state": ctx_state}

    def forward(self, kind: str, batch: dict, gen: torch.Generator):
        if kind == "render":
            return self.model.render_loss(batch, gen, self.hint_noise)
        # judge: the coverage of the frame the action led to, as a soft success/progress label. With
        # `judge_imagined`, part of the frames are the model's own predictions of that frame (same
        # label): the judge then reads the frames it scores in the learned env, not only real ones.
        frames = batch["fut_latents"][:, 0]
        if kind == "judge" and self.judge_imagined > 0:
            use = (torch.rand(len(frames), generator=gen) < self.judge_imagined).to(frames.device)
            frames = torch.where(use.view(-1, 1, 1, 1, 1), self.imagined_next(batch, gen), frames)
        judge = self.model.judge_loss(batch["text_ids"], frames, batch["reward"])
        if kind == "judge":
            return {"loss": judge}
        if self.rollout_steps > 0:
            batch = self.own_context(batch, gen)
        losses = self.model.flow_loss(batch, gen, self.mode_probs, self.context_noise, self.motion_weight,
                                      self.frame_t1_share, self.hint_teacher, self.hint_noise, self.state_weight)
        # the reasoner tower also encodes the text the generator reads, so the judge trains jointly
        return {**losses, "loss": losses["loss"] + judge, "judge": judge.detach()}


def _dist() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def load_trainer_state(path: Path) -> dict:
    """A run's resume state (stage, step, optimizer tensors) with `weights_only=True`: a crafted file cannot run
    code; a corrupt or foreign one is refused naming the file and the fix."""
    import pickle

    try:
        st = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise UserError(f"{str(path)!r} is not a resumable trainer state ({type(e).__name__}: {str(e)[:200]}); "
                         "delete it to restart that stage, or train into a new --out") from None
    if not isinstance(st, dict) or not isinstance(st.get("stage"), str) or not isinstance(st.get("step"), int):
        raise UserError(f"{str(path)!r} holds no stage/step; delete it to restart, or train into a new --out")
    return st


def _start(cfg: TrainConfig, out: Path, state_path: Path) -> tuple[WorldModel, dict]:
    """The model and trainer state a run starts from: an interrupted run's, `cfg.init`'s (grown by the parts
    the config adds), or a fresh model."""
    resumed = state_path.is_file()
    if not resumed and (out / "config.json").is_file() and not cfg.overwrite:
        raise UserError(f"--out {str(out)!r} already holds a finished checkpoint; choose another directory or pass "
                         "--overwrite to replace it (an interrupted run there would have been resumed)")
    if resumed:
        model = WorldModel.from_pretrained(out)
        st = load_trainer_state(state_path)
    elif cfg.init:
        model = WorldModel.from_pretrained(cfg.init)
        st = {"stage": "render", "step": 0}
        overrides = model_overrides(cfg)
        grow = {k: True for k in GROWN_PARTS if overrides.get(k) and not getattr(model.cfg, k)}
        new_target = overrides.get("frame_prediction", model.cfg.frame_prediction) != model.cfg.frame_prediction
        new_head = overrides.get("frame_head", model.cfg.frame_head) != model.cfg.frame_head or \
            overrides.get("conv_head_state", model.cfg.conv_head_state) != model.cfg.conv_head_state or \
            overrides.get("state_geometry", model.cfg.state_geometry) != model.cfg.state_geometry
        model.cfg = replace(model.cfg, **{k: v for k, v in overrides.items() if k not in GROWN_PARTS})
        if new_target and not new_head:  # the frame head's old target means something else now
            nn.init.zeros_(model.frame_out.weight)
            nn.init.zeros_(model.frame_out.bias)
        if grow or new_head:  # add the new modules (fresh init), keep every other trained weight
            grown = WorldModel(replace(model.cfg, **grow), model.metadata)
            old = {k: v for k, v in model.state_dict().items()
                   if not (new_head and k.startswith(("frame_out", "frame_conv")))}
            missing, unexpected = grown.load_state_dict(old, strict=False)
            assert not unexpected and all(k.startswith(("action_cond", "frame_pos", "frame_out", "frame_conv"))
                                          for k in missing), (missing, unexpected)
            model = grown
    else:
        model = WorldModel(get_config(cfg.preset, **model_overrides(cfg)))
        st = {"stage": "tokenizer", "step": 0}
    return model, st


def train(cfg: TrainConfig) -> WorldModel:
    rank, world = _dist()
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    state_path = out / STATE_FILE
    model, st = _start(cfg, out, state_path)  # refuses to overwrite a finished checkpoint first
    spec = load_spec(dataset_embodiment(cfg.dataset, cfg.embodiment))
    if cfg.render_steps and not model.cfg.conv_head_state:
        raise UserError(f"render_steps={cfg.render_steps} needs a conv frame head that reads the state: set "
                         "frame_head='conv' and conv_head_state (--frame-head conv --conv-head-state N)")
    normalizers = dataset_normalizers(cfg.dataset, spec)
    perceived = cfg.perceive_state or model.metadata.get("perceived_state")
    perception_dims(perceived)  # an unknown name fails here, before any work
    if perceived:
        model.metadata["perceived_state"] = perceived
    model.metadata.update({
        "embodiment": spec.name, "domain_id": spec.domain_id, "context": cfg.context,
        "success_threshold": cfg.success_threshold, "sample_noise": cfg.sample_noise, "train": asdict(cfg),
        "normalizers": {k: n.to_dict() for k, n in normalizers.items()},
    })
    episodes = load_episodes(cfg.dataset)
    camera = spec.cameras[0].key
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(out / "losses.jsonl" if rank == 0 else None)

    def checkpoint(stage: str, step: int, opt=None):
        if rank != 0:
            return
        model.save_pretrained(out)
        tmp = state_path.with_suffix(".tmp")
        torch.save({"stage": stage, "step": step, "optimizer": None if opt is None else opt.state_dict()}, tmp)
        os.replace(tmp, state_path)  # atomic: a kill never leaves a half-written state

    if st["stage"] == "tokenizer":
        frames = np.concatenate([resize_frames(e["frames"][camera], model.cfg.image_size) for e in episodes])
        frames = torch.from_numpy(frames).permute(0, 3, 1, 2)
        losses = train_frame_autoencoder(model.frame_tokenizer, frames, steps=cfg.tokenizer_steps,
                                         batch_size=cfg.tokenizer_batch, seed=cfg.seed,
                                         progress=cfg.progress and rank == 0,
                                         detail_weight=cfg.tokenizer_detail_weight)
        log({"stage": "tokenizer", "loss_first": losses[0], "loss_last": float(np.mean(losses[-50:]))})
        st = {"stage": "render", "step": 0}
        checkpoint("render", 0)
    data = LatentData(model, episodes, spec, normalizers, cfg.context, camera, perceived)
    order = ("render", "world_model", "judge", "done")
    for stage, steps in (("render", cfg.render_steps), ("world_model", cfg.steps), ("judge", cfg.judge_steps)):
        if order.index(st["stage"]) > order.index(stage):
            continue
        if steps == 0 and stage == "render":
            st = {"stage": "world_model", "step": 0}
            continue
        model.requires_grad_(True)
        model.frame_tokenizer.requires_grad_(False)
        if stage == "render":  # the conv head alone learns to draw frames from states
            model.requires_grad_(False)
            model.frame_conv.requires_grad_(True)
        if stage == "judge":  # last stage: only weights the generator never reads
            model.requires_grad_(False)
            model.judge_head.requires_grad_(True)
            model.vision_in.requires_grad_(True)
        params = [p for p in model.parameters() if p.requires_grad]
        objective = _Objective(model, cfg.context_noise, cfg.judge_imagined, cfg.sample_noise, cfg.motion_weight,
                               cfg.forward_share, cfg.frame_t1_share, cfg.rollout_steps, cfg.rollout_share,
                               cfg.hint_teacher, cfg.hint_noise, cfg.state_weight)
        if world > 1:
            objective = nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
        start = st["step"] if st["stage"] == stage else 0
        if st["stage"] == stage and st.get("optimizer"):
            opt.load_state_dict(st["optimizer"])
        sched = warmup_cosine(opt, steps, start=start)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank * 7919 + start)
        kind = {"render": "render", "world_model": "flow", "judge": "judge"}[stage]
        history = cfg.rollout_steps if kind == "flow" else 0

        def save(step, stage=stage, opt=opt):
            if (step + 1) % cfg.save_every == 0:
                checkpoint(stage, step + 1, opt)

        fit(lambda step: objective(kind, data.batch(cfg.batch_size, gen, history), gen), opt, steps, sched=sched,
            start=start, clip=1.0, stage=stage, log=log, log_every=10, progress=cfg.progress and rank == 0,
            on_step=save)
        if stage == "render":  # the joint stage starts from the pretrained renderer: token features start at zero
            nn.init.zeros_(model.frame_out.weight)
            nn.init.zeros_(model.frame_out.bias)
        st = {"stage": order[order.index(stage) + 1], "step": 0}
        checkpoint(st["stage"], 0)
    if rank == 0:
        state_path.unlink(missing_ok=True)  # finished: the directory is a plain checkpoint
    log({"stage": "done", "world_size": world})
    if dist.is_initialized():
        dist.barrier()
    return model.eval()


def train_frame_autoencoder(
    ae: FrameAutoencoder,
    frames: torch.Tensor,  # (N, 3, H, W) uint8
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    detail_weight: float = 0.0,
    log=None,
) -> list[float]:
    """Train the autoencoder on frames (MSE), then calibrate its latent statistics. `detail_weight` > 0
    multiplies the loss by 1 + detail_weight on pixels that differ from the frame's background colour
    (its per-channel median): small objects on a plain table (the PushT pusher and T) otherwise come
    out blurred, because they are a few percent of the pixels."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps)
    losses = []
    ae.train()

    def loss_fn(step):
        idx = torch.randint(len(frames), (batch_size,), generator=gen)
        x = to_float_frames(frames[idx])
        rec = (ae.decoder(ae.encoder(x * 2 - 1)).clamp(-1, 1) + 1) / 2
        if detail_weight > 0:
            loss = (((rec - x) ** 2) * (1 + detail_weight * foreground(x))).mean()
        else:
            loss = F.mse_loss(rec, x)
        losses.append(loss.item())
        return loss

    fit(loss_fn, opt, steps, sched=sched, stage="tokenizer", log=log, progress=progress)
    ae.eval()
    ae.calibrate(frames)
    return losses

