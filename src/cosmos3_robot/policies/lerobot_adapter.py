"""Any LeRobot `PreTrainedPolicy` saved in a local directory (e.g. `lerobot-train`'s
`checkpoints/last/pretrained_model`) as an agent in the real and the learned simulator: our
observations already use LeRobot keys; images go HWC uint8 -> CHW float in [0, 1], then lerobot's
own saved pre/post-processors do the normalization, as `lerobot-eval` does. An input feature the simulators do
not give (e.g. `observation.environment_state`, gym-pusht's keypoints) is derived from the observation by the
function the task registered for it (`embodiments.perception.register_observation_feature`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..embodiments import is_camera_key, load_spec
from ..embodiments.perception import derived_feature_keys, observation_feature
from ..errors import UserError


class LeRobotPolicy:
    def __init__(self, path: str | Path, task: str = "", name: str | None = None, device: str = "cpu",
                 embodiment: str | None = None):
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
        self.derived = {}  # input feature key -> fn(observation), for features the simulators do not give
        if embodiment is not None:
            spec = load_spec(embodiment)
            given = {cam.key for cam in spec.cameras} | {"observation.state"}
            for key in cfg.input_features:
                if key in given:
                    continue
                fn = observation_feature(spec.name, key)
                if fn is None:
                    raise UserError(f"{str(path)!r}: the policy reads input feature {key!r}, which {spec.name!r} "
                                    f"observations do not hold (they give {sorted(given)}; derived: "
                                    f"{derived_feature_keys(spec.name) or 'none'}); train it on these features, or "
                                    "register a function for it with embodiments.perception.register_observation_feature")
                self.derived[key] = fn

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
        for key, fn in self.derived.items():
            batch[key] = torch.as_tensor(np.asarray(fn(observation), np.float32))[None]
        batch["task"] = [self.task]
        action = self.post(self.policy.select_action(self.pre(batch)))
        return action[0].detach().cpu().numpy().astype(np.float32)
