"""PushT's pieces for the structured backend: the world state is the state token of the world model
it came from, float32 (B, 6) = [pusher x, y (min-max normalized by the dataset's state stats), the T's
x, y, cos, sin (`vision.block_pose_features`)]; the Generator tower over entity tokens (config "tower":
the pusher, a point, and the T, a pose in SE(2)) moves it, or in older checkpoints the task-specific pose
MLP (config "dynamics_width", kept as a baseline); a learned renderer draws it (sprites composited by the
state in the shipped checkpoint, a conv net in older ones); its goal coverage
(gym-pusht's reward) is the reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...datasets.video import resize_to
from ...embodiments import EmbodimentSpec, Normalizer
from ...model import SpriteRendererConfig, StateRenderer, StateRendererConfig, make_renderer
from ...model.entity_policy import EntityPolicy, EntityPolicyConfig
from ...model.entity_tower import EntityTower, EntityTowerConfig, sampler
from .dynamics import PoseDynamics
from .vision import (T_OUTLINE, WORKSPACE, block_pose_features, estimate_agent_position, features_to_pose,
                     goal_coverage, pose_to_features, project_block_pose_features)
from ...errors import UserError

ENTRY_POINT = "cosmos3_robot.tasks.pusht.structured:PushTWorld"
ENTITIES = [{"name": "pusher", "kind": "point2"}, {"name": "tee", "kind": "se2"}]
# gym-pusht's walls (pusht.py `_setup`): segments of radius 2 along x, y = 5 and 506, so the T's outline stays
# within [7, 504] on both axes
WALLS = (7.0, 504.0)


def inside_walls(pose: np.ndarray) -> np.ndarray:
    """T poses (..., 3) in workspace units -> the same poses moved the least distance that puts the T's
    outline inside gym-pusht's walls (`WALLS`), as its physics pushes a T out of a wall. The tower learns
    from recorded episodes where the T seldom meets a wall, and without this a learned T could be pushed
    through one and stay there, half outside the arena."""
    p = np.array(pose, dtype=np.float64, copy=True)
    c, s = np.cos(p[..., 2]), np.sin(p[..., 2])
    x = T_OUTLINE[:, 0] * c[..., None] - T_OUTLINE[:, 1] * s[..., None] + p[..., :1]
    y = T_OUTLINE[:, 0] * s[..., None] + T_OUTLINE[:, 1] * c[..., None] + p[..., 1:2]
    for axis, v in enumerate((x, y)):
        p[..., axis] += np.maximum(WALLS[0] - v.min(-1), 0) + np.minimum(WALLS[1] - v.max(-1), 0)
    return p


def tower_config(spec: EmbodimentSpec, **overrides) -> EntityTowerConfig:
    """PushT's entity declaration for the Generator tower: the pusher (a point; the action is its target
    position) and the T (a pose in SE(2)), in workspace units with features per 100 units."""
    return EntityTowerConfig(entities=ENTITIES, action_dim=spec.action_dims, action_low=spec.action.lower.tolist(),
                             action_high=spec.action.upper.tolist(), workspace_low=spec.state.lower.tolist(),
                             workspace_high=spec.state.upper.tolist(), action_kind="point2", length_scale=100.0,
                             **overrides)


def _tensor(x) -> torch.Tensor:
    """Task-unit numbers -> float32 tensor, through float64 (as the tower's inputs have always been made)."""
    return torch.from_numpy(np.asarray(x, np.float64)).float()


def sprite_config(**overrides) -> SpriteRendererConfig:
    """PushT's entities for the sprite renderer, in the state's order: the pusher (gym-pusht draws a disc of
    radius 15 workspace units) and the T (`T_OUTLINE` in its own frame), each box with a margin of 7-15 units
    for anti-aliasing; in image units (the 512-unit workspace spans [-1, 1])."""
    u = 2 / WORKSPACE
    lo, hi = T_OUTLINE.min(0), T_OUTLINE.max(0)
    centre, half = (lo + hi) / 2, float((hi - lo).max() / 2 + 15)
    return SpriteRendererConfig("point:0,pose:2", boxes=((0.0, 0.0, 22 * u), (centre[0] * u, centre[1] * u, half * u)),
                                **overrides)


class PushTWorld(nn.Module):
    """`StructuredTask` for PushT (see module docstring). config: state_normalizer (Normalizer dict),
    tower (EntityTowerConfig dict) or dynamics_width (the baseline pose MLP), renderer (SpriteRendererConfig or
    StateRendererConfig dict)."""

    def __init__(self, config: dict, spec: EmbodimentSpec):
        super().__init__()
        for key in ("state_normalizer", "renderer"):
            if key not in config:
                raise UserError(f"PushT task_config lacks {key!r}; expected state_normalizer, tower, renderer")
        if sum(k in config for k in ("tower", "dynamics_width")) != 1:
            raise UserError("PushT task_config needs exactly one of 'tower' (the Generator tower's config) and "
                             "'dynamics_width' (the baseline pose MLP)")
        self.config, self.spec = config, spec
        self.camera = spec.cameras[0]
        self.state_norm = Normalizer.from_dict(config["state_normalizer"])
        if "tower" in config:
            self.dynamics = EntityTower(EntityTowerConfig.from_dict(config["tower"]))
        else:
            self.dynamics = PoseDynamics(int(config["dynamics_width"]))
        self.renderer = make_renderer(config["renderer"])
        self.policy = EntityPolicy(EntityPolicyConfig.from_dict(config["policy"])) if "policy" in config else None
        self.use_runtime("torch")

    def use_runtime(self, runtime: str, search=()) -> None:
        """Run the tower's sampler and the renderer eagerly ("torch") or through ONNX Runtime ("onnxruntime",
        graphs looked up in `search`, else exported once into the user cache). The baseline MLP stays eager."""
        self._draw = self.renderer.drawer(runtime, search)
        tower = isinstance(self.dynamics, EntityTower)
        self._sample = sampler(self.dynamics, runtime, search) if tower else None

    @classmethod
    def from_config(cls, config: dict, spec: EmbodimentSpec) -> PushTWorld:
        return cls(config, spec)

    def perceive(self, frames: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
        agent = self.state_norm.normalize(np.asarray(state, np.float64))
        return np.concatenate([agent, block_pose_features(frames[self.camera.name])], axis=-1).astype(np.float32)

    def read_state(self, frames: dict[str, np.ndarray]) -> np.ndarray:
        """The robot state (N, 2) read off frames (N, H, W, 3): the pusher's position."""
        return np.stack([estimate_agent_position(f) for f in frames[self.camera.name]])

    def agent(self, world: np.ndarray) -> np.ndarray:
        return self.state_norm.unnormalize(np.asarray(world[..., :2], np.float32).astype(np.float64))

    def rest_actions(self, world: np.ndarray) -> np.ndarray:
        return self.agent(world)  # a position target at the pusher holds it still

    def entities(self, world: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """History (B, T, W) -> the entities' states now and one step ago, [pusher (B, 2), T pose (B, 3)] each,
        in workspace units (the tower's inputs)."""
        before = -2 if world.shape[1] > 1 else -1
        return ([_tensor(self.agent(world[:, -1])), _tensor(features_to_pose(world[:, -1, 2:6]))],
                [_tensor(self.agent(world[:, before])), _tensor(features_to_pose(world[:, before, 2:6]))])

    @torch.no_grad()
    def act(self, world: np.ndarray, last_actions: np.ndarray, prev_actions: np.ndarray,
            flow_steps: int | None = None, generator: torch.Generator | None = None) -> np.ndarray:
        """The policy head: history (B, T, W) and the two actions that led to it (B, A) -> action chunks
        (B, H, A) in physical units."""
        if self.policy is None:
            raise UserError("this checkpoint has no policy head (task_config 'policy'); train one with "
                             "`cosmos3-robot train-policy` (scripts/train_pusht_policy.sh)")
        now, prev = self.entities(world)
        chunk = self.policy.sample(now, prev, _tensor(last_actions), _tensor(prev_actions), flow_steps, generator)
        return chunk.numpy()

    @torch.no_grad()
    def step(self, world: np.ndarray, actions: np.ndarray, prev_actions: np.ndarray, noise=None):
        (agent, pose), (prev_agent, prev_pose) = self.entities(world)
        t = [agent, prev_agent, _tensor(actions), _tensor(prev_actions), pose, prev_pose]
        info = {}
        if isinstance(self.dynamics, EntityTower):
            cfg = self.dynamics.cfg
            shape = (cfg.samples, len(ENTITIES), self.dynamics.max_change)
            if noise is None:
                out = self.dynamics.sample([t[0], t[4]], [t[1], t[5]], t[2], t[3])
            else:
                out = self._sample([t[0], t[4]], [t[1], t[5]], t[2], t[3], noise(shape))
            (next_agent, next_pose), info["disagreement"] = out[0], out[1].numpy()
        else:
            next_agent, next_pose = self.dynamics.step(*t[:5])
        agent = np.clip(next_agent.numpy(), self.spec.state.lower, self.spec.state.upper).astype(np.float32)
        features = project_block_pose_features(pose_to_features(inside_walls(next_pose.numpy())))
        nxt = np.concatenate([self.state_norm.normalize(agent.astype(np.float64)), features], -1).astype(np.float32)
        return nxt, info

    def observe(self, world: np.ndarray) -> np.ndarray:
        return np.clip(self.agent(world), self.spec.state.lower, self.spec.state.upper).astype(np.float32)

    def render(self, world: np.ndarray) -> dict[str, np.ndarray]:
        frames = self._draw(torch.from_numpy(np.asarray(world, np.float32)))
        return {self.camera.name: resize_to(frames, self.camera.height, self.camera.width)}

    def reward(self, world: np.ndarray) -> np.ndarray:
        return goal_coverage(features_to_pose(world[:, 2:6]))


def task_config(state_normalizer: dict, dynamics: int | EntityTowerConfig,
                renderer: SpriteRendererConfig | StateRendererConfig, policy: EntityPolicyConfig | None = None) -> dict:
    """`dynamics`: the Generator tower's config, or the baseline pose MLP's width;
    `policy`: the policy head's, if it has one."""
    if isinstance(dynamics, EntityTowerConfig):
        key, value = "tower", dynamics.to_dict()
    else:
        key, value = "dynamics_width", int(dynamics)
    out = {"state_normalizer": state_normalizer, key: value, "renderer": renderer.to_dict()}
    return out | ({"policy": policy.to_dict()} if policy is not None else {})


def world_model_parts(path) -> tuple:
    """A world-model checkpoint (`cosmos3-robot train`, perceived T pose, conv head drawing the state's
    geometry) -> (WorldModel without the weights of heads that moved out, its raw pose-head weights or None)."""
    from ...model import WorldModel
    from ...model.checkpoint import load_state_checked, read_config, read_weights

    cfg, meta = read_config(path)
    state, source = read_weights(path)
    head = {k.removeprefix("pose_dynamics."): v.float() for k, v in state.items() if k.startswith("pose_dynamics.")}
    model = WorldModel(cfg, meta)
    load_state_checked(model, {k: v for k, v in state.items()
                               if not k.startswith(("pose_dynamics.", "field_renderer."))}, source)
    return model.eval(), head or None  # (loading casts float16 weights into the model's float32 ones)


def build_backend(renderer: nn.Module, dynamics: EntityTower | PoseDynamics,
                  state_normalizer: dict, spec: EmbodimentSpec, history: int = 2, success_threshold: float = 0.9,
                  provenance: dict | None = None, policy: EntityPolicy | None = None):
    """A structured backend from trained PushT pieces (`policy`: a policy head, optional)."""
    from ...backends.structured import StructuredBackend

    key = dynamics.cfg if isinstance(dynamics, EntityTower) else dynamics.out.in_features
    world = PushTWorld(task_config(state_normalizer, key, renderer.cfg, policy.cfg if policy else None), spec)
    world.renderer.load_state_dict(renderer.state_dict())
    if policy is not None:
        world.policy.load_state_dict(policy.state_dict())
    world.dynamics.load_state_dict(dynamics.state_dict())
    return StructuredBackend(world, spec, history, success_threshold, ENTRY_POINT, provenance)


def export_world_model(path, out: str | Path) -> None:
    """Convert a world-model checkpoint that carries a pose dynamics head (the format before backends) into
    a structured checkpoint holding only what the learned env runs: the pose head, the conv head's
    state-drawing path and the tokenizer's decoder."""
    from ...embodiments import load_spec

    model, head = world_model_parts(path)
    if head is None:
        raise UserError(f"{path}: no pose dynamics head to export; train one with `cosmos3-robot train-dynamics`")
    dynamics = PoseDynamics(head["out.weight"].shape[1])
    dynamics.load_state_dict(head)
    meta = model.metadata
    provenance = {k: meta[k] for k in ("train", "pose_dynamics", "renderer_training") if k in meta}
    backend = build_backend(StateRenderer.from_world_model(model), dynamics, meta["normalizers"]["observation.state"],
                            load_spec(meta["embodiment"]), int(meta.get("context", 2)),
                            float(meta.get("success_threshold", 0.9)), provenance)
    backend.save(out)
