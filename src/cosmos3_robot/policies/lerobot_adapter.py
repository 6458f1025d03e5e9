"""Any LeRobot `PreTrainedPolicy` saved in a local directory (e.g. `lerobot-train`'s
`checkpoints/last/pretrained_model`) as an agent in the real and the learned simulator: our
observations already use LeRobot keys; images go HWC uint8 -> CHW float in [0, 1], then lerobot's
own saved pre/post-processors do the normalization, as `lerobot-eval` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..embodiments import is_camera_key


class LeRobotPolicy:
    def __init__(self, path: str | Path, task: str = "", name: str | None = None, device: str = "cpu"):
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} has no config.json: pass a lerobot pretrained_model directory")
        cfg = PreTrainedConfig.from_pretrained(path)
        cfg.device = device
        self.policy = get_policy_class(cfg.type).from_pretrained(path, config=cfg).eval()
        self.pre, self.post = make_pre_post_processors(cfg, pretrained_path=str(path))
        self.task, self.name = task, name or f"lerobot-{cfg.type}"

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset()
        if seed is not None:
            torch.manual_seed(seed)  # sampling policies (diffusion) draw from torch's global RNG

    @torch.inference_mode()
    def select_action(self, observation: dict) -> np.ndarray:
        batch = {}
        for key, value in observation.items():
            if is_camera_key(key):
                batch[key] = torch.from_numpy(np.ascontiguousarray(value)).permute(2, 0, 1).float()[None] / 255.0
            elif key.startswith("observation."):
                batch[key] = torch.as_tensor(np.asarray(value, np.float32))[None]
        batch["task"] = [self.task]
        action = self.post(self.policy.select_action(self.pre(batch)))
        return action[0].detach().cpu().numpy().astype(np.float32)
