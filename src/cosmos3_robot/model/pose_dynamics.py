"""Contact dynamics of a pushed rigid body, learned in the body's own frame.

The world model's transformer predicts the perceived state (PushT: the T's pose) from two context
states, and measured on held-out episodes it moves a resting T by 4.5 units per step and does no better
than "no change" when the T is pushed (benchmarks/perceived_dynamics.py). Pushing is invariant to
where the body lies and how it is turned, so this head sees the pusher's recent positions and its
action expressed in the body's frame (plus the body's place in the workspace, for the walls) and
predicts the body's change in that frame, times a learned contact probability: off contact the body
stays exactly where it is. The world model then draws the next frame from this state
(`WorldModel.sample(state_hint=...)`). Trained by `fit_pose_dynamics` on poses perceived from the
dataset's own frames (`embodiments.perception`), never on simulator internals.

Units: positions in workspace units, angles in radians; `scale` sets the feature scale.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (..., 2, 2)


def to_body(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """World points (..., 2) -> the frame of the body at `pose` (..., 3) = (x, y, angle)."""
    return torch.einsum("...ji,...j->...i", _rotation(pose[..., 2]), points - pose[..., :2])


def from_body(vectors: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Body-frame vectors (..., 2) -> world vectors (rotation only)."""
    return torch.einsum("...ij,...j->...i", _rotation(pose[..., 2]), vectors)


class PoseDynamics(nn.Module):
    """(pusher now, pusher one step ago, action now, previous action, body pose) -> next pusher position,
    next body pose and the contact logit. All inputs (b, 2) / pose (b, 3) in workspace units."""

    N_IN, N_OUT = 12, 5

    def __init__(self, width: int = 256, layers: int = 3, scale: float = 100.0, workspace: float = 512.0):
        super().__init__()
        self.scale, self.workspace = float(scale), float(workspace)
        blocks, d = [], self.N_IN
        for _ in range(layers):
            blocks += [nn.Linear(d, width), nn.SiLU()]
            d = width
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, self.N_OUT)
        self.contact = nn.Linear(width, 1)

    def features(self, agent, prev_agent, action, prev_action, pose) -> torch.Tensor:
        local = [to_body(p, pose) / self.scale for p in (agent, prev_agent, action, prev_action)]
        place = pose[..., :2] / (self.workspace / 2) - 1
        return torch.cat([*local, place, torch.cos(pose[..., 2:]), torch.sin(pose[..., 2:])], dim=-1)

    def forward(self, agent, prev_agent, action, prev_action, pose) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (b, 5) body-frame changes [pusher dx, dy (/10), body dx, dy (/10), dangle (x10)] already gated
        by the contact probability, and the contact logit (b,)."""
        h = self.body(self.features(agent, prev_agent, action, prev_action, pose))
        out, logit = self.out(h), self.contact(h)[..., 0]
        return torch.cat([out[..., :2], out[..., 2:] * torch.sigmoid(logit)[..., None]], dim=-1), logit

    @staticmethod
    def targets(agent, next_agent, pose, next_pose) -> torch.Tensor:
        """The body-frame changes `forward` predicts, from two consecutive states."""
        d_angle = torch.remainder(next_pose[..., 2] - pose[..., 2] + torch.pi, 2 * torch.pi) - torch.pi
        return torch.cat([to_body(next_agent, pose) - to_body(agent, pose),
                          to_body(next_pose[..., :2], pose), 10 * d_angle[..., None]], dim=-1) * torch.tensor(
            [0.1, 0.1, 0.1, 0.1, 1.0])

    @torch.no_grad()
    def step(self, agent, prev_agent, action, prev_action, pose) -> tuple[torch.Tensor, torch.Tensor]:
        """One control step: next pusher position (b, 2) and body pose (b, 3). Off contact (logit < 0) the
        body does not move at all, so a resting body never drifts."""
        out, logit = self(agent, prev_agent, action, prev_action, pose)
        moving = (logit >= 0).to(out.dtype)[..., None]
        next_agent = agent + from_body(10 * out[..., :2], pose)
        shift = from_body(10 * out[..., 2:4], pose) * moving
        next_pose = torch.cat([pose[..., :2] + shift, pose[..., 2:] + out[..., 4:] / 10 * moving], dim=-1)
        return next_agent, next_pose


def transitions(episodes: list[dict]) -> dict[str, torch.Tensor]:
    """Episodes with `agent` (T, 2), `pose` (T, 3) and `action` (T-1 or T, 2) (action t leads from step t to
    t+1) -> stacked training tensors; before the first step the pusher rests where it starts."""
    cols: dict[str, list] = {k: [] for k in ("agent", "prev_agent", "action", "prev_action", "pose", "next_agent",
                                             "next_pose")}
    for ep in episodes:
        agent, pose = np.asarray(ep["agent"], np.float64), np.asarray(ep["pose"], np.float64)
        n = len(agent) - 1
        if n < 1:
            continue
        action = np.asarray(ep["action"], np.float64)[:n]
        if len(action) < n or len(pose) != len(agent):
            raise ValueError(f"episode has {len(agent)} states, {len(pose)} poses and {len(ep['action'])} actions; "
                             "expected as many poses as states and one action per transition")
        cols["agent"].append(agent[:n])
        cols["prev_agent"].append(np.concatenate([agent[:1], agent[: n - 1]]))
        cols["action"].append(action)
        cols["prev_action"].append(np.concatenate([agent[:1], action[: n - 1]]))
        cols["pose"].append(pose[:n])
        cols["next_agent"].append(agent[1:])
        cols["next_pose"].append(pose[1:])
    if not cols["agent"]:
        raise ValueError("no transitions: every episode has fewer than two steps")
    return {k: torch.from_numpy(np.concatenate(v)).float() for k, v in cols.items()}


def fit_pose_dynamics(head: PoseDynamics, data: dict[str, torch.Tensor], epochs: int = 30, batch: int = 512,
                      lr: float = 2e-3, seed: int = 0, progress: bool = True, log=None) -> dict:
    """Train `head` on `transitions(...)` (one-cycle AdamW, MSE on the body-frame changes with the body's
    weighted 3x, plus a contact classifier). Deterministic for a seed. Returns final metrics."""
    gen = torch.Generator().manual_seed(seed)
    n = len(data["agent"])
    if n < batch:
        batch = max(1, n)
    target = PoseDynamics.targets(data["agent"], data["next_agent"], data["pose"], data["next_pose"])
    moving = (target[:, 2:].abs().sum(-1) > 1e-4).float()
    weights = torch.tensor([1.0, 1.0, 3.0, 3.0, 3.0])
    per_epoch = n // batch
    opt = torch.optim.AdamW(head.parameters(), lr / 2, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, epochs * per_epoch))
    inputs = [data[k] for k in ("agent", "prev_agent", "action", "prev_action", "pose")]
    head.train()
    loss = torch.zeros(())
    bar = tqdm(range(epochs), desc="pose dynamics", disable=not progress)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen)
        for i in range(per_epoch):
            idx = perm[i * batch : (i + 1) * batch]
            out, logit = head(*[x[idx] for x in inputs])
            loss = ((out - target[idx]) ** 2 * weights).mean() + 0.1 * nn.functional.binary_cross_entropy_with_logits(
                logit, moving[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if log is not None:
            log({"stage": "pose_dynamics", "epoch": epoch, "loss": loss.item()})
    head.eval()
    return {"loss": float(loss.detach()), "transitions": n, "moving_share": float(moving.mean())}


def perceived_transitions(episodes: list[dict], spec, perceived: str, camera_key: str,
                          features: list[np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """LeRobot episodes (`datasets.load_episodes`) -> `transitions`: the agent from `observation.state`, the
    body pose perceived from each frame (as the world model's perceived state; `features`: the episodes'
    already perceived states, to skip perceiving again), the recorded actions."""
    from ..embodiments.perception import perceive, pose_functions

    to_pose = pose_functions(perceived)[0]
    dims = spec.state.dims
    if spec.action_dims != dims:
        raise ValueError(f"pose dynamics need actions that are agent targets (action dims {spec.action_dims} = "
                         f"state dims {dims}); {spec.name!r} differs")
    if features is None:
        features = [perceive(perceived, ep["frames"][camera_key]) for ep in episodes]
    eps = [{"agent": np.asarray(ep["state"])[:, :dims], "pose": to_pose(f), "action": np.asarray(ep["action"])}
           for ep, f in zip(episodes, features)]
    return transitions(eps)


def _reinit(module: nn.Module, seed: int) -> None:
    """Re-draw the Linear layers of `module` from PyTorch's default init under `seed`."""
    torch.manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.reset_parameters()


def add_pose_dynamics(init, dataset, out, width: int = 256, epochs: int = 30, seed: int = 0, render_steps: int = 0,
                      render_width: int | None = None, render_layers: int | None = None, render_batch: int = 256,
                      pixel_steps: int = 0, random_frames: int = 0, device: str = "cpu", field_steps: int = 0,
                      field_width: int = 96, progress: bool = True):
    """Load the world model checkpoint `init` (trained with a perceived pose and a conv frame head that
    draws from the state), train a pose dynamics head on `dataset`'s episodes, switch the learned env's
    judge to the predicted pose's goal coverage, and save the result to `out`. With `render_steps` > 0 the
    conv frame head is also retrained (fresh, optionally `render_width` x `render_layers`) to draw frames
    from the state alone (`renderer.fit_renderer`, on `device`), and the learned env renders that way; then
    `pixel_steps` fine-tune that head with the tokenizer's decoder in pixel space (`fit_renderer_pixels`) on
    the dataset's frames plus `random_frames` frames of random gym-pusht states. With `field_steps` > 0 a
    field renderer (`field_renderer.FieldRenderer`, `field_width` wide) is trained instead on the same
    frames and the learned env draws each frame with it. With `render_steps` = 0 an
    `init` that already renders from the state keeps its renderer and only the pose head is replaced (its
    init depends on `seed` alone). Returns the model."""
    from ..datasets import load_episodes
    from ..embodiments import load_spec, pad_action
    from .world_model import WorldModel

    if pixel_steps and not render_steps:
        raise ValueError("pixel_steps fine-tune the state renderer: give render_steps > 0 too (--render-steps)")
    if field_steps and render_steps:
        raise ValueError("choose one renderer: the conv state renderer (--render-steps) or the field renderer "
                         "(--field-steps), not both")
    base = WorldModel.from_pretrained(init)
    meta = dict(base.metadata)
    perceived = meta.get("perceived_state")
    if not perceived or not base.cfg.conv_head_state:
        raise ValueError(f"{init}: pose dynamics need a checkpoint trained with --perceive-state and --conv-head-state "
                         "(the frames are drawn from the predicted state); see scripts/train_pusht_state.sh")
    torch.manual_seed(seed)
    cfg = replace(base.cfg, pose_dynamics_width=width)
    # a fresh pose head (`init` may carry one of another width); with render_steps = 0 the init's renderer stays
    keep = {k: v for k, v in base.state_dict().items() if not k.startswith("pose_dynamics.")}
    if field_steps:  # a fresh field renderer
        cfg = replace(cfg, field_renderer_width=field_width)
        keep = {k: v for k, v in keep.items() if not k.startswith("field_renderer.")}
    if render_steps:  # a fresh conv head: it will read only the state
        cfg = replace(cfg, conv_head_width=render_width or cfg.conv_head_width,
                      conv_head_layers=render_layers or cfg.conv_head_layers)
        keep = {k: v for k, v in keep.items() if not k.startswith("frame_conv.")}
    model = WorldModel(cfg, meta)
    missing, unexpected = model.load_state_dict(keep, strict=False)
    assert not unexpected and all(k.startswith(("pose_dynamics.", "frame_conv.", "field_renderer."))
                                  for k in missing), missing
    _reinit(model.pose_dynamics, seed)  # its init depends on the seed alone, not on the modules built before it
    spec = load_spec(meta["embodiment"])
    episodes = load_episodes(dataset)
    from ..embodiments.perception import perceive, pose_functions

    camera_key = spec.cameras[0].key
    features = [perceive(perceived, ep["frames"][camera_key]) for ep in episodes]  # once, for both fits
    data = perceived_transitions(episodes, spec, perceived, camera_key, features)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def log(record):
        with open(out / "losses.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    metrics = fit_pose_dynamics(model.pose_dynamics, data, epochs=epochs, seed=seed, progress=progress, log=log)
    # coverage >= the real simulator's threshold (PushTRealEnv: 0.90) is success, as in the real env
    model.metadata = {**meta, "pose_dynamics": {"dataset": str(dataset), "epochs": epochs, "seed": seed, **metrics},
                      "judge": "coverage", "success_threshold": 0.9}
    if render_steps:
        from ..embodiments import Normalizer
        from .renderer import fit_renderer, render_pairs

        normalizers = {k: Normalizer.from_dict(d) for k, d in meta["normalizers"].items()}
        pairs = render_pairs(model, episodes, normalizers, perceived, camera_key, features)
        info = fit_renderer(model, pairs, steps=render_steps, batch=render_batch, seed=seed, device=device,
                            progress=progress, log=log)
        model.metadata |= {"renderer": "state", "renderer_training": {"device": device, **info}}
    if pixel_steps:
        from ..envs.real import random_pusht_frames
        from .frame_tokenizer import resize_frames
        from .renderer import fit_renderer_pixels

        frames = [ep["frames"][camera_key] for ep in episodes]
        states = [pairs["state"]]
        if random_frames:
            extra, agents = random_pusht_frames(random_frames, seed)
            s = np.concatenate([normalizers["observation.state"].normalize(agents.astype(np.float64)),
                                perceive(perceived, extra)], axis=1).astype(np.float32)
            frames.append(extra)
            states.append(torch.from_numpy(pad_action(s, model.cfg.state_dim)[0]))
        frames = resize_frames(np.concatenate(frames), model.cfg.image_size)
        info = fit_renderer_pixels(model, frames, torch.cat(states), steps=pixel_steps, seed=seed, device=device,
                                   progress=progress, log=log)
        model.metadata["renderer_training"]["pixels"] = {**info, "random_frames": random_frames}
    if field_steps:
        from ..envs.real import random_pusht_frames
        from .field_renderer import fit_field_renderer

        to_pose = pose_functions(perceived)[0]
        dims = spec.state.dims
        frames = [ep["frames"][camera_key] for ep in episodes]
        agents = [np.asarray(ep["state"])[:, :dims] for ep in episodes]
        poses = [to_pose(f) for f in features]
        if random_frames:
            extra, extra_agents = random_pusht_frames(random_frames, seed)
            frames.append(extra)
            agents.append(extra_agents)
            poses.append(to_pose(perceive(perceived, extra)))
        _reinit(model.field_renderer, seed)
        info = fit_field_renderer(model.field_renderer, np.concatenate(frames), np.concatenate(agents),
                                  np.concatenate(poses), steps=field_steps, seed=seed, progress=progress, log=log)
        model.metadata |= {"renderer": "field",
                           "renderer_training": {"field": {**info, "width": field_width, "random_frames": random_frames}}}
    model.save_pretrained(out)
    return model
