"""Training windows: (context frames, action chunk, target frames, state, instruction, success),
under Cosmos 3's T/T+1 convention: actions a_t .. a_{t+F-1} lead from frame t to frames
t+1 .. t+F. When the embodiment's video runs slower than its controller, frames are subsampled and
the actions between two frames folded into one (`actions_to_frame_rate`)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..embodiments import EmbodimentSpec, FrameAlignment, actions_to_frame_rate, load_spec


def lerobot_delta_timestamps(spec: EmbodimentSpec, context: int, horizon: int, cameras: list[str] | None = None
                             ) -> dict[str, list[float]]:
    """`delta_timestamps` for `LeRobotDataset` giving the same window layout (lerobot pads past the
    episode ends and reports `<key>_is_pad`)."""
    dt = 1.0 / spec.video_fps
    frames = [round(i * dt, 6) for i in range(-context + 1, horizon + 1)]
    keys = [spec.camera(c).key for c in cameras] if cameras else [c.key for c in spec.cameras]
    out = {k: frames for k in keys}
    if spec.state.dims:
        out["observation.state"] = frames
    out["action"] = [round(i / spec.control_hz, 6) for i in range(horizon)]
    return out


def episode_to_frame_rate(episode: dict, spec: EmbodimentSpec) -> dict:
    """Subsample a control-rate episode to the spec's video fps (integer ratios)."""
    k = FrameAlignment.from_spec(spec).steps_per_frame
    if abs(k - 1) < 1e-9:
        return episode
    k = int(round(k))
    n = (len(episode["action"]) // k) * k
    out = dict(episode)
    out["frames"] = {c: f[:n:k] for c, f in episode["frames"].items()}
    out["state"] = None if episode["state"] is None else episode["state"][:n:k]
    out["action"] = actions_to_frame_rate(episode["action"][:n], spec.action, k).astype(np.float32)
    return out


class TrainingWindows(Dataset):
    """Windows over in-memory episodes (`load_episodes`). Item tensors: `ctx_frames` (C, v, 3, H, W)
    uint8, `fut_frames` (F, v, 3, H, W) uint8, `ctx_state` (C, S), `fut_state` (F, S), `actions`
    (F, A), `action_pad` (F,) bool, `instruction` str, `success` bool (episode outcome),
    `fut_success` (F,) bool (per target frame). Frames before the episode start repeat the first;
    targets past the end repeat the last frame with the action marked as padding."""

    def __init__(self, episodes: list[dict], spec: EmbodimentSpec | str, context: int = 2, horizon: int = 1,
                 cameras: list[str] | None = None):
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.context, self.horizon = context, horizon
        self.episodes = [episode_to_frame_rate(e, self.spec) for e in episodes]
        first = self.episodes[0]["frames"]
        self.cameras = [self.spec.camera(c).key for c in cameras] if cameras else list(first)
        self.index = [(e, t) for e, ep in enumerate(self.episodes) for t in range(len(ep["action"]))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        e, t = self.index[i]
        ep = self.episodes[e]
        T = len(ep["action"])  # frames 0..T-1 observed, frame T is the final observation if stored
        n_frames = len(ep["frames"][self.cameras[0]])
        ctx_idx = np.clip(np.arange(t - self.context + 1, t + 1), 0, n_frames - 1)
        fut_idx = np.clip(np.arange(t + 1, t + self.horizon + 1), 0, n_frames - 1)
        act_idx = np.arange(t, t + self.horizon)
        pad = act_idx >= T
        frames = np.stack([ep["frames"][c] for c in self.cameras], axis=1)  # (T, v, H, W, 3)
        frames = torch.from_numpy(frames).permute(0, 1, 4, 2, 3)
        state = ep["state"] if ep["state"] is not None else np.zeros((n_frames, 0), np.float32)
        actions = ep["action"][np.minimum(act_idx, T - 1)].copy()
        actions[pad] = 0.0
        return {
            "ctx_frames": frames[ctx_idx],
            "fut_frames": frames[fut_idx],
            "ctx_state": torch.from_numpy(state[ctx_idx]),
            "fut_state": torch.from_numpy(state[fut_idx]),
            "actions": torch.from_numpy(actions),
            "action_pad": torch.from_numpy(pad),
            "instruction": ep["task"],
            "success": bool(ep["success"].any()),
            "fut_success": torch.from_numpy(ep["success"][np.minimum(act_idx, T - 1)] & ~pad),
        }
