"""The transfer-cube scene's pieces for the structured backend (the learned `cosmos3_robot/AlohaTransferCube-v0`).

World state, float32 (B, 17): the 14 joints and grippers of the `aloha` spec's state (left arm, left gripper,
right arm, right gripper; gym-aloha's gripper 0 = closed, 1 = open) and the cube's centre (3).
- perceive: the joints from `observation.state`; the cube from the `top` frame (its red blob on the table).
- step: a learned joint servo (`ArmServo`: joint targets -> next joints and grippers), each arm's kinematic
  chain (numbers read from gym-aloha's model once; no MuJoCo while stepping) for the grasp points, and the
  Generator tower over entity tokens (both grasp points and the cube, points in 3-D) for the cube, under a
  grasp constraint whose numbers are measured from the training episodes (`train.estimate_grasp`): a hand whose
  fingers close on the cube in its grip carries it (the left one first, as in a hand-over), a closing gripper
  stops at the cube, and a cube nothing holds falls onto the table.
- render: the `top` frame from the keypoints of both arms' links, fingers and the cube, projected through the
  camera's calibration (`model.keypoint_renderer`).
- reward: 1 where the left hand holds the cube off the table (gym-aloha's reward 4, its success)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

from ...datasets.video import resize_to
from ...embodiments import CameraCalibration, EmbodimentSpec
from ...embodiments.kinematics import chain_parameters, forward, shift_joints
from ...errors import UserError
from ...model.entity_tower import EntityTower, EntityTowerConfig, sampler
from ...model.keypoint_renderer import KeypointRenderer, KeypointRendererConfig
from .expert import CUBE_HALF, GRASP, aloha_model, find_cube, top_calibration

ENTRY_POINT = "cosmos3_robot.tasks.aloha.structured:AlohaTransferCubeWorld"
ENTITIES = [{"name": "left", "kind": "point3"}, {"name": "right", "kind": "point3"}, {"name": "cube", "kind": "point3"}]
Q, GRIPS, CUBE, WORLD_DIMS = slice(0, 14), (6, 13), slice(14, 17), 17
RENDER_SIZE = (48, 64)  # the renderer's frame (h, w); the env's frames are resized to the spec's 480x640
HANDS = ("vx300s_left/gripper_link", "vx300s_right/gripper_link")
FINGER = (0.01844, 0.058)  # m: a finger's slide from the gripper's axis, closed and open (gym-aloha constants)
MAX_CUBE_STEP = 0.03  # m: the cube moves at most this far in one 50 Hz step


def task_config(**tower) -> dict:
    model = aloha_model()
    chains = [chain_parameters(model, body=h) for h in HANDS]
    chains[1] = shift_joints(chains[1], -1)  # MuJoCo's qpos has two finger slides between the arms; the state one
    for c in chains:
        c["site_pos"] = GRASP.tolist()
    links = [len(c["bodies"]) for c in chains]
    return {"chains": chains, "calibration": top_calibration(model).to_dict(), "servo_width": 256,
            "tower": tower_config(**tower).to_dict(),
            "renderer": KeypointRendererConfig(groups=keypoint_groups(*links), cameras=1, height=RENDER_SIZE[0],
                                               width=RENDER_SIZE[1]).to_dict()}


def tower_config(**overrides) -> EntityTowerConfig:
    """Both grasp points and the cube, points in 3-D (m, features per 10 cm); the action: where the right hand
    goes (3), where the left goes (3), both grippers' readings now and next (4)."""
    kw = {"dim": 64, "ffn_dim": 128, "head_width": 128, **overrides}
    return EntityTowerConfig(entities=ENTITIES, action_dim=10, action_low=[-0.5, 0.1, 0.0] * 2 + [0.0] * 4,
                             action_high=[0.5, 0.9, 0.5] * 2 + [1.0] * 4, workspace_low=[-0.5, 0.1, 0.0],
                             workspace_high=[0.5, 0.9, 0.5], action_kind="point3", length_scale=0.1, **kw)


_RIGHT: list = []  # the right arm's chain, read from gym-aloha's model on first use


def hand_path(states: np.ndarray) -> np.ndarray:
    """(T, 14) spec states -> (T, 3) the right hand's grasp point (the hand that carries the cube)."""
    if not _RIGHT:
        chain = shift_joints(chain_parameters(aloha_model(), body=HANDS[1]), -1)
        _RIGHT.append({**chain, "site_pos": GRASP.tolist()})
    return forward(_RIGHT[0], np.asarray(states, np.float64)[:, :14])[1]


def finger_slide(reading: np.ndarray) -> np.ndarray:
    """A gripper reading (0 closed .. 1 open) -> each finger's slide from the gripper's axis (m)."""
    return FINGER[0] + np.asarray(reading) * (FINGER[1] - FINGER[0])


def hands(chains: list[dict], world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, W) -> each hand's grasp point (B, 2, 3) and rotation (B, 2, 3, 3) (left, right; one pass per chain)."""
    out = [forward(c, world[:, Q]) for c in chains]
    return np.stack([o[1] for o in out], 1), np.stack([o[2] for o in out], 1)


def grasp_points(chains: list[dict], world: np.ndarray) -> np.ndarray:
    """(B, W) -> (B, 2, 3): each hand's grasp point (left, right)."""
    return hands(chains, world)[0]


def hand_frames(chains: list[dict], world: np.ndarray) -> np.ndarray:
    """(B, W) -> (B, 2, 3, 3): each gripper's rotation (x along the fingers, y across them)."""
    return hands(chains, world)[1]


class ArmServo(nn.Module):
    """A learned joint servo for both arms: joints and grippers now and one step ago, joint targets and gripper
    commands, and where the cube is from each hand -> next joints and grippers. A learned per-joint gain on the
    error to the target and on the last change (a position servo's form: a held target holds the arm still) plus
    an MLP's correction, in units of 0.05 rad and 0.1 of a gripper's travel."""

    SCALE = torch.tensor(([0.05] * 6 + [0.1]) * 2)

    def __init__(self, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(62, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 14))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.gain = nn.Parameter(torch.full((14,), 0.3))
        self.damping = nn.Parameter(torch.full((14,), 0.3))

    def forward(self, now, prev, action, cube_in_hands) -> torch.Tensor:
        servo = self.gain * (action - now) + self.damping * (now - prev)
        x = torch.cat([now, (now - prev) / 0.05, (action - now) / 0.2, action, (cube_in_hands / 0.1).clamp(-3, 3)], -1)
        return servo / self.SCALE + self.net(x)

    def step(self, now, prev, action, cube_in_hands) -> torch.Tensor:
        return now + self(now, prev, action, cube_in_hands) * self.SCALE


class AlohaTransferCubeWorld(nn.Module):
    """`StructuredTask` for gym-aloha's transfer-cube scene (see module docstring). config: chains (both arms'
    `chain_parameters` to the grasp point), calibration (the top camera), servo_width, tower, renderer, and grasp
    (`train.estimate_grasp`'s numbers)."""

    cameras = ("top",)

    def __init__(self, config: dict, spec: EmbodimentSpec):
        super().__init__()
        for key in ("chains", "calibration", "servo_width", "tower", "renderer"):
            if key not in config:
                raise UserError(f"transfer-cube task_config lacks {key!r}; expected chains, calibration, servo_width, "
                                 "tower, renderer and grasp")
        self.config, self.spec = config, spec
        self.chains = config["chains"]
        self.calib = CameraCalibration.from_dict(config["calibration"])
        self.servo = ArmServo(int(config["servo_width"]))
        self.dynamics = EntityTower(EntityTowerConfig.from_dict(config["tower"]))
        self.renderer = KeypointRenderer(KeypointRendererConfig.from_dict(config["renderer"]))
        self.q_low, self.q_high = spec.state.lower, spec.state.upper
        self.grasp = config.get("grasp")
        if self.grasp is not None:
            if not ({"offset", "box", "hold"} <= set(self.grasp.get("right", {}))
                    and {"depth", "height", "centred", "slide"} <= set(self.grasp.get("left", {})) and "fall" in self.grasp):
                raise UserError("transfer-cube task_config 'grasp' lacks the right hand's offset, box or hold, the "
                                 "left's depth, height, centred or slide, or fall; write it with "
                                 "tasks.aloha.train.estimate_grasp")
        self.use_runtime("torch")

    @classmethod
    def from_config(cls, config: dict, spec: EmbodimentSpec) -> AlohaTransferCubeWorld:
        return cls(config, spec)

    def use_runtime(self, runtime: str, search=()) -> None:
        self._sample = sampler(self.dynamics, runtime, search)

    def perceive(self, frames: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
        world = np.zeros((len(state), WORLD_DIMS), np.float32)
        world[:, Q] = state[:, :14]
        for i in range(len(state)):
            cube = find_cube(np.asarray(frames["top"][i]), self.calib)
            if cube is None:
                raise UserError(f"start frame {i}: no red cube in the top frame; the learned transfer-cube scene "
                                 "starts where the cube is in view")
            world[i, CUBE] = cube
        return world

    def rest_actions(self, world: np.ndarray) -> np.ndarray:
        return world[:, Q].astype(np.float64)

    def cube_in_hands(self, world: np.ndarray, at=None) -> np.ndarray:
        """(B, W) -> (B, 6): the cube from each hand's grasp point, in that hand's frame (`at`: `hands(world)`
        where the caller has it)."""
        pts, R = at if at is not None else hands(self.chains, world)
        return np.einsum("bhji,bhj->bhi", R, world[:, None, CUBE] - pts).reshape(len(world), 6).astype(np.float32)

    def between_left_fingers(self, world: np.ndarray, rel=None) -> tuple[np.ndarray, np.ndarray]:
        """(B, W) -> (B,) bool: the cube between the left fingers (depth and height, `estimate_grasp`), and
        (B, 3) where it sits in the left hand's frame (`rel`: `cube_in_hands(world)` where the caller has it)."""
        g = self.grasp["left"]
        rel = (self.cube_in_hands(world) if rel is None else rel).reshape(-1, 2, 3)[:, 0]
        return (rel[:, 0] >= g["depth"][0]) & (rel[:, 0] <= g["depth"][1]) & (np.abs(rel[:, 2]) <= g["height"]), rel

    def touching(self, world: np.ndarray, rel=None) -> np.ndarray:
        """(B, W) -> (B,) bool: both left fingers on the cube: it is between them, centred (within `centred`),
        and their slide is down to `slide` (`train.estimate_grasp`'s left numbers)."""
        if self.grasp is None:
            return np.zeros(len(world), bool)
        g = self.grasp["left"]
        inside, rel = self.between_left_fingers(world, rel)
        return inside & (np.abs(rel[:, 1]) <= g["centred"]) & (finger_slide(world[:, GRIPS[0]]) <= g["slide"])

    def holding(self, world: np.ndarray, actions: np.ndarray, rel=None) -> np.ndarray:
        """(B, W), (B, 14) -> (B, 2) bool per hand (left, right): the right hand holds where its reading is in
        the band that holds the cube and the cube sits in its grip (`box` about `offset`, in its frame), whatever
        its command (fingers told to open hold the cube until they have opened out of the band); the left, under a
        closing command (below 0.5), where its fingers touch the cube (`touching`)."""
        out = np.zeros((len(world), 2), bool)
        if self.grasp is None:
            return out
        g = self.grasp["right"]
        rel = self.cube_in_hands(world) if rel is None else rel
        reading = world[:, GRIPS[1]]
        d, box = rel.reshape(-1, 2, 3)[:, 1] - np.asarray(g["offset"]), np.asarray(g["box"])
        near = np.all((d >= box[:, 0]) & (d <= box[:, 1]), 1)
        out[:, 1] = (reading >= g["hold"][0]) & (reading <= g["hold"][1]) & near
        out[:, 0] = (actions[:, GRIPS[0]] < 0.5) & self.touching(world, rel)
        return out

    def slips(self, held: np.ndarray, before: np.ndarray, now: np.ndarray, after: np.ndarray,
              draws: np.ndarray | None) -> np.ndarray:
        """(B,) bool: where the right hand, holding the cube alone, loses it this step. Its chance rises with the
        grasp point's acceleration |after - 2 now + before| (m per step per step), as measured in the scene
        (`train.estimate_slip`: the hazard over the hand at rest, per step). `draws`: one standard normal per row
        from the session's noise stream; without them (None) the step takes the likelier outcome."""
        slip = (self.grasp or {}).get("right", {}).get("slip")
        out = np.zeros(len(held), bool)
        if slip is None:
            return out
        acc = np.linalg.norm(after - 2 * now + before, axis=-1)
        hazard = np.asarray(slip["hazard"])[np.clip(np.searchsorted(slip["acc"], acc, "right") - 1, 0, None)]
        u = np.full(len(held), 0.5) if draws is None else ndtr(draws)
        return held[:, 1] & ~held[:, 0] & (u < hazard)

    def stop_at_table(self, now: np.ndarray, nxt: np.ndarray, iters: int = 6) -> np.ndarray:
        """The table stops a hand: where the servo would take an arm's grasp point below `floor` (the grasp
        points' heights' 1st percentile in the collected episodes, 5 mm lower; `train.estimate_grasp`) and lower
        than it is now, that arm goes only part of the way (the largest fraction, by bisection, that keeps its
        grasp point at the floor or where it was)."""
        floor = self.grasp["floor"]
        limit = np.minimum(grasp_points(self.chains, now)[:, :, 2], floor)  # a hand below it may not go lower
        out = nxt.copy()
        for h, arm in enumerate((slice(0, 6), slice(7, 13))):
            rows = np.flatnonzero(grasp_points(self.chains, out)[:, h, 2] < limit[:, h] - 1e-6)
            if len(rows) == 0:
                continue
            lo, hi = np.zeros(len(rows)), np.ones(len(rows))
            trial = out[rows].copy()
            for _ in range(iters):
                mid = (lo + hi) / 2
                trial[:, arm] = now[rows, arm] + mid[:, None] * (nxt[rows, arm] - now[rows, arm])
                good = grasp_points(self.chains, trial)[:, h, 2] >= limit[rows, h] - 1e-6
                lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
            out[rows, arm] = now[rows, arm] + lo[:, None] * (nxt[rows, arm] - now[rows, arm])
        return out

    def out_of_grip(self, cube: np.ndarray, point: np.ndarray, R: np.ndarray) -> np.ndarray:
        """(N, 3) cubes that slipped from the right hand at `point` (N, 3), frame R (N, 3, 3): each left where it
        was, lowered (no lower than the table) until it sits 5 mm out of the grip's `box`."""
        g = self.grasp["right"]
        box, d = np.asarray(g["box"]), np.einsum("nji,nj->ni", R, cube - point) - np.asarray(g["offset"])
        down = -R[:, 2, :]  # the grip-frame move of a world move (0, 0, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.where(down > 0, (box[:, 1] - d) / down, np.where(down < 0, (box[:, 0] - d) / down, np.inf))
        drop = np.min(np.where(reach >= 0, reach, np.inf), 1) + 0.005
        out = cube.copy()
        out[:, 2] = np.maximum(cube[:, 2] - np.minimum(drop, cube[:, 2]), CUBE_HALF)
        return out

    @torch.no_grad()
    def step(self, world: np.ndarray, actions: np.ndarray, prev_actions: np.ndarray, noise=None):
        now, prev = world[:, -1], world[:, -2 if world.shape[1] > 1 else -1]
        t = lambda x: torch.from_numpy(np.asarray(x, np.float32))  # noqa: E731
        at_now = hands(self.chains, now)
        rel_now = self.cube_in_hands(now, at_now)
        q = self.servo.step(t(now[:, Q]), t(prev[:, Q]), t(actions), t(rel_now)).numpy()
        q = np.clip(q, self.q_low, self.q_high)
        held = self.holding(now, actions, rel_now)
        nxt = now.copy()
        nxt[:, Q] = q
        if self.grasp is not None and "floor" in self.grasp:
            nxt = self.stop_at_table(now, nxt)
        at_next = hands(self.chains, nxt)
        pts_now, pts_next, pts_prev = at_now[0], at_next[0], grasp_points(self.chains, prev)
        shape = (self.dynamics.cfg.samples, len(ENTITIES), self.dynamics.max_change)
        draws = None if noise is None else noise((int(np.prod(shape)) + 1,)).numpy()  # the tower's, then one more
        slipped = self.slips(held, pts_prev[:, 1], pts_now[:, 1], pts_next[:, 1],
                             None if draws is None else draws[:, -1])
        held[slipped, 1] = False
        if self.grasp is not None:  # fingers closed on the cube stop on it, and a closing command keeps them there
            rows, stop = held[:, 1], self.grasp["right"]["hold"][0] + 0.03
            grip = nxt[:, GRIPS[1]]  # a view: the grippers do not move the grasp points (`at_next` stands)
            grip[rows] = np.maximum(grip[rows], stop)
            pressed = rows & (actions[:, GRIPS[1]] < 0.5)
            grip[pressed] = np.minimum(grip[pressed], np.maximum(now[pressed, GRIPS[1]], stop))
        g_now, g_next = now[:, list(GRIPS)], nxt[:, list(GRIPS)]
        action = np.concatenate([pts_next[:, 1], pts_next[:, 0], g_now, g_next], -1)
        prev_action = np.concatenate([pts_now[:, 1], pts_now[:, 0], prev[:, list(GRIPS)], g_now], -1)
        states_now = [t(pts_now[:, 0]), t(pts_now[:, 1]), t(now[:, CUBE])]
        states_prev = [t(pts_prev[:, 0]), t(pts_prev[:, 1]), t(prev[:, CUBE])]
        if noise is None:
            out = self.dynamics.sample(states_now, states_prev, t(action), t(prev_action))
        else:
            out = self._sample(states_now, states_prev, t(action), t(prev_action),
                               torch.from_numpy(draws[:, :-1].reshape(len(draws), *shape)))
        (_, _, cube), disagreement = out[0], out[1]
        cube = cube.numpy().astype(np.float64)
        move = cube - now[:, CUBE]
        norm = np.linalg.norm(move, axis=-1, keepdims=True)
        cube = now[:, CUBE] + move * np.minimum(1.0, MAX_CUBE_STEP / np.maximum(norm, 1e-9))
        if self.grasp is not None:
            for h in (1, 0):  # a held cube moves with its hand; the left one's grip wins (it takes the cube over)
                rows = held[:, h]
                cube[rows] = now[rows, CUBE] + pts_next[rows, h] - pts_now[rows, h]
            # closing left fingers push a cube between them towards their middle (`touching`'s numbers): at slide s
            # it sits at most s - (slide - centred) off it
            g = self.grasp["left"]
            moved = nxt.copy()
            moved[:, CUBE] = cube
            inside, rel = self.between_left_fingers(moved, self.cube_in_hands(moved, at_next))  # nxt's joints
            room = np.maximum(finger_slide(nxt[:, GRIPS[0]]) - (g["slide"] - g["centred"]), 0.0)
            # only a cube within the fingers' span before they close (a finger's slide now, plus the cube's half)
            span = finger_slide(now[:, GRIPS[0]]) + CUBE_HALF
            push = inside & (np.abs(rel[:, 1]) > room) & (np.abs(rel[:, 1]) <= span)
            if push.any():
                R = at_next[1][push][:, 0]
                shift = np.sign(rel[push, 1]) * (np.abs(rel[push, 1]) - room[push])
                cube[push] -= R[:, :, 1] * shift[:, None]
            if slipped.any():  # a cube shaken out of the right grip leaves it downwards, out of its box
                cube[slipped] = self.out_of_grip(now[slipped, CUBE], at_next[0][slipped, 1], at_next[1][slipped, 1])
            free = ~held.any(1)
            z, z_before = now[:, CUBE][:, 2], prev[:, CUBE][:, 2]
            up = free & (z > CUBE_HALF + 0.002)
            falling = np.minimum(z[up] - z_before[up], 0.0) - self.grasp["fall"]
            cube[up, 2] = np.minimum(cube[up, 2], z[up] + falling)
        cube[:, 2] = np.maximum(cube[:, 2], CUBE_HALF)
        nxt[:, CUBE] = cube
        return nxt.astype(np.float32), {"disagreement": disagreement.numpy()}

    def observe(self, world: np.ndarray) -> np.ndarray:
        return np.clip(world[:, Q], self.spec.state.lower, self.spec.state.upper).astype(np.float32)

    def keypoints(self, world: np.ndarray) -> np.ndarray:
        """(B, W) -> world-frame keypoints (B, P, 3): per arm its link origins, grasp point and two fingertips;
        then the cube's 8 corners (`keypoint_groups` joins them)."""
        parts = []
        for h, chain in enumerate(self.chains):
            origins, pt, R = forward(chain, world[:, Q])
            slide = FINGER[0] + world[:, GRIPS[h], None] * (FINGER[1] - FINGER[0])
            parts += [origins, pt[:, None], (pt + R[:, :, 1] * slide)[:, None], (pt - R[:, :, 1] * slide)[:, None]]
        h = CUBE_HALF
        corners = np.array([[x, y, z] for z in (-h, h) for x, y in ((-h, -h), (h, -h), (h, h), (-h, h))])
        parts.append(world[:, None, CUBE] + corners[None])
        return np.concatenate(parts, 1)

    def project(self, world: np.ndarray) -> np.ndarray:
        """(B, W) -> renderer inputs (B, 1, P, 3): (u, v) in [-1, 1] across the top frame, log depth."""
        points = self.keypoints(world)
        c = self.calib
        pose = c.camera_to_world
        p = (points - pose[:3, 3]) @ pose[:3, :3]
        z = np.maximum(p[..., 2], 0.02)
        u = (c.K[0, 0] * p[..., 0] / z + c.K[0, 2] + 0.5) / c.width * 2 - 1
        v = (c.K[1, 1] * p[..., 1] / z + c.K[1, 2] + 0.5) / c.height * 2 - 1
        return np.stack([u, v, np.log(z)], -1)[:, None].astype(np.float32)

    @torch.no_grad()
    def render(self, world: np.ndarray) -> dict[str, np.ndarray]:
        pts = torch.from_numpy(self.project(world))[:, 0]
        frames = self.renderer.draw(pts, torch.zeros(len(pts), dtype=torch.long))
        cam = self.spec.camera("top")
        return {"top": resize_to(frames, cam.height, cam.width)}

    def reward(self, world: np.ndarray) -> np.ndarray:
        """1 where a left finger touches the cube off the table (gym-aloha's reward 4)."""
        return (self.touching(world) & (world[:, CUBE][:, 2] > CUBE_HALF + 0.005)).astype(np.float64)


def keypoint_groups(left_links: int, right_links: int) -> list:
    """The renderer's segment groups for `keypoints`' layout: per arm one group per link (origin to the next),
    the hand (last link to the grasp point) and the fingers; the cube's 12 edges."""
    groups, base = [], 0
    for links in (left_links, right_links):
        groups += [[[base + i, base + i + 1]] for i in range(links - 1)]
        pt, f1, f2 = base + links, base + links + 1, base + links + 2
        groups += [[[base + links - 1, pt]], [[pt, f1], [pt, f2], [f1, f2]]]
        base += links + 3
    edges = [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
    groups.append([[base + a, base + b] for a, b in edges])
    return groups
