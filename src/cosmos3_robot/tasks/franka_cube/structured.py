"""The Franka cube scene's pieces for the structured backend (the learned `cosmos3_robot/FrankaCube-v0`).

World state, float32 (B, 20): joints q (7), gripper (1, DROID's 0 = open), end-effector position (3) and
euler "xyz" (3) (DROID's cartesian_position), the cube's centre (3) and yaw (1), the target's centre (2).
- perceive: the robot's state from `observation.state`; the cube and target from the exterior frames and
  their calibration (`perception.py`), as the scripted expert sees them.
- step: a learned joint servo (`ArmDynamics`: joint targets -> next joints and gripper), the robot's
  kinematic chain (numbers read from its model once; no MuJoCo while stepping) for the hand, and the
  Generator tower over entity tokens (the hand and the cube, points in 3-D; the action token carries where
  the hand goes and the gripper) for the cube, under a grasp constraint whose numbers are measured from the
  training episodes (`train.estimate_grasp`): fingers that close with the cube in the grip (in the hand's
  frame) stop on it and stay there while the command holds, the held cube moves with the hand, a cube that
  nothing holds falls onto the table, and a finger that overlaps a free cube pushes it aside. The tower alone
  had the held cube lag the hand and the fingers' reading drift open, so it let the cube go in the air
  (docs/eval_franka.md).
- render: every camera's frame from the keypoints of the links, fingers, cube and target projected through
  its calibration (`model.keypoint_renderer`); the wrist camera rides on the chain.
- reward: 1 where the cube rests on the target and the gripper has let go (the real scene's success)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import nn
from torch.nn import functional as F

from ...datasets.video import resize_to
from ...embodiments import CameraCalibration, EmbodimentSpec
from ...model.entity_tower import EntityTower, EntityTowerConfig, sampler
from ...model.keypoint_renderer import KeypointRenderer, KeypointRendererConfig
from .kinematics import forward
from .perception import CAMERA, GREEN, RED, find_on_table, locate_cube
from .real import CUBE_HALF, SUCCESS_RADIUS
from ...errors import UserError

ENTRY_POINT = "cosmos3_robot.tasks.franka_cube.structured:FrankaCubeWorld"
ENTITIES = [{"name": "hand", "kind": "point3"}, {"name": "cube", "kind": "point3"}]
Q, GRIP, EE, EULER, CUBE, YAW, TARGET = slice(0, 7), 7, slice(8, 11), slice(11, 14), slice(14, 17), 17, slice(18, 20)
WORLD_DIMS = 20
RELEASED = 0.25  # gripper reading below this: the fingers are open wider than the cube (0.375 holds it)
MAX_CUBE_STEP = 0.05  # m: the cube moves at most this far in one control step (the hand's top speed is 0.045)
FINGER_RADIUS, FINGER_SPAN = 0.009, (-0.043, 0.01)  # m: the Panda finger's capsules (menagerie), along the hand
TOUCH, HOLD_MAX = 0.1, 0.5  # a closing gripper's reading settled in this band: the fingers stopped on the cube
SLACK = 0.02  # fingers read at most this past the cube's `hold` reading can still close on it (narrower: on air)
TARGET_HALF = 0.04


def joints(world: np.ndarray) -> np.ndarray:
    """(B, W) world states -> (B, 8) joints and gripper, the servo's state."""
    return np.concatenate([world[:, Q], world[:, GRIP, None]], -1)


def tower_config(**overrides) -> EntityTowerConfig:
    """The hand and the cube, points in 3-D (m, features per 10 cm); the tower's action is where the hand goes
    (3) and the gripper's reading now and next (2)."""
    return EntityTowerConfig(entities=ENTITIES, action_dim=5, action_low=[0.0, -0.6, 0.0, 0.0, 0.0],
                             action_high=[0.9, 0.6, 0.8, 1.0, 1.0], workspace_low=[0.2, -0.4, 0.0],
                             workspace_high=[0.8, 0.4, 0.4], action_kind="point3", length_scale=0.1,
                             **overrides)


class ArmDynamics(nn.Module):
    """A learned joint servo: joints and gripper now and one step ago, joint targets and gripper command, and
    where the cube is from the hand -> next joints and gripper. The change is a learned per-joint gain on the
    error to the target and on the last change (a position servo's form, so a held target holds the arm
    still) plus an MLP's correction, in units of 0.05 rad and 0.1. The cube's place is what tells fingers
    that close on it (they stop at its width) from fingers that close on air."""

    SCALE = torch.tensor([0.05] * 7 + [0.1])

    def __init__(self, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 8))
        # the fingers alone see the cube: the arm's joints follow their targets whatever the hand holds
        self.fingers = nn.Sequential(nn.Linear(35, width // 2), nn.SiLU(), nn.Linear(width // 2, 1))
        for last in (self.net[-1], self.fingers[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.gain = nn.Parameter(torch.full((8,), 0.3))
        self.damping = nn.Parameter(torch.full((8,), 0.3))

    def features(self, now, prev, action) -> torch.Tensor:
        """now, prev: (B, 8) joints + gripper; action (B, 8) joint targets + command."""
        return torch.cat([now, (now - prev) / 0.05, (action - now) / 0.2, action], -1)

    def forward(self, now, prev, action, cube_from_hand) -> torch.Tensor:
        """-> the change to the next step, in units of SCALE (cube_from_hand: (B, 3) m)."""
        servo = self.gain * (action - now) + self.damping * (now - prev)
        x = self.features(now, prev, action)
        fingers = self.fingers(torch.cat([x, (cube_from_hand / 0.1).clamp(-3, 3)], -1))
        return servo / self.SCALE + self.net(x) + F.pad(fingers, (7, 0))

    def step(self, now, prev, action, cube_from_hand) -> torch.Tensor:
        return now + self(now, prev, action, cube_from_hand) * self.SCALE


class FrankaCubeWorld(nn.Module):
    """`StructuredTask` for the Franka cube scene (see module docstring). config: chain
    (`kinematics.chain_parameters`), mount (`kinematics.camera_mount` of the wrist camera), calibrations
    (the exterior cameras' `CameraCalibration` dicts), arm_width, tower (EntityTowerConfig dict), renderer
    (KeypointRendererConfig dict), and optionally grasp (`train.estimate_grasp`'s numbers)."""

    def __init__(self, config: dict, spec: EmbodimentSpec):
        super().__init__()
        for key in ("chain", "mount", "calibrations", "arm_width", "tower", "renderer"):
            if key not in config:
                raise UserError(f"Franka cube task_config lacks {key!r}; expected chain, mount, calibrations, "
                                 "arm_width, tower, renderer")
        self.config, self.spec = config, spec
        self.cameras = [c.name for c in spec.cameras]
        self.calibs = {n: CameraCalibration.from_dict(d) for n, d in config["calibrations"].items()}
        self.arm = ArmDynamics(int(config["arm_width"]))
        self.dynamics = EntityTower(EntityTowerConfig.from_dict(config["tower"]))
        self.renderer = KeypointRenderer(KeypointRendererConfig.from_dict(config["renderer"]))
        self.q_low, self.q_high = spec.state.lower[:7], spec.state.upper[:7]
        self.grasp = config.get("grasp")  # estimate_grasp's numbers; None (older checkpoints): no grasp constraint
        if self.grasp is not None:
            missing = [k for k in ("offset", "across", "along", "depth", "hold", "fall") if k not in self.grasp]
            if missing or len(self.grasp.get("offset", ())) != 3:
                raise UserError(f"Franka cube task_config 'grasp' lacks {missing or 'a 3-D offset'}; write it with "
                                 "tasks.franka_cube.train.estimate_grasp(episodes)")
        self.use_runtime("torch")

    @classmethod
    def from_config(cls, config: dict, spec: EmbodimentSpec) -> FrankaCubeWorld:
        return cls(config, spec)

    def use_runtime(self, runtime: str, search=()) -> None:
        """The tower's sampler eagerly ("torch") or through ONNX Runtime. The servo and the renderer stay eager:
        the renderer's graph ran at half eager speed under ONNX Runtime (0.14 against 0.07 s for 48 frames)."""
        self._sample = sampler(self.dynamics, runtime, search)

    # ------------------------------------------------------------------ perception

    def perceive(self, frames: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, np.float64)
        world = np.zeros((len(state), WORLD_DIMS), np.float32)
        world[:, :14] = state[:, :14]
        for i in range(len(state)):
            images = {c: frames[c][i] for c in frames}
            cube = locate_cube(images, self.calibs, CUBE_HALF)
            top = find_on_table(images[CAMERA], self.calibs[CAMERA], RED, CUBE_HALF)
            target = find_on_table(images[CAMERA], self.calibs[CAMERA], GREEN, 0.0)
            if cube is None or target is None:
                raise UserError(f"start frame {i}: the {'cube' if cube is None else 'target'} is not visible in "
                                 f"the exterior cameras; the learned Franka scene starts where both are in view")
            world[i, CUBE], world[i, TARGET] = cube, target[0]
            world[i, YAW] = top[1] if top is not None else 0.0
        return world

    def rest_actions(self, world: np.ndarray) -> np.ndarray:
        return np.concatenate([world[:, Q], world[:, GRIP, None]], -1).astype(np.float64)  # hold the joints

    # ------------------------------------------------------------------ dynamics

    @torch.no_grad()
    def step(self, world: np.ndarray, actions: np.ndarray, prev_actions: np.ndarray, noise=None):
        now, prev = world[:, -1], world[:, -2 if world.shape[1] > 1 else -1]
        t = lambda x: torch.from_numpy(np.asarray(x, np.float32))  # noqa: E731
        nxt_joints = self.arm.step(t(joints(now)), t(joints(prev)), t(actions), t(now[:, CUBE] - now[:, EE])).numpy()
        q = np.clip(nxt_joints[:, :7], self.q_low, self.q_high)
        grip = np.clip(nxt_joints[:, 7], 0.0, 1.0)
        held = self.holding(now, actions[:, 7])
        if held.any():  # fingers closed on the cube stay on it while the command holds: no drift either way
            g = now[held, GRIP]
            grip[held] = np.clip(grip[held], g, np.maximum(g, self.grasp["hold"]))
        _, ee, R = forward(self.config["chain"], q)
        euler = Rotation.from_matrix(R).as_euler("xyz")
        action = np.concatenate([ee, now[:, GRIP, None], grip[:, None]], -1)
        prev_action = np.concatenate([now[:, EE], prev[:, GRIP, None], now[:, GRIP, None]], -1)
        cfg = self.dynamics.cfg
        states_now, states_prev = [t(now[:, EE]), t(now[:, CUBE])], [t(prev[:, EE]), t(prev[:, CUBE])]
        if noise is None:
            out = self.dynamics.sample(states_now, states_prev, t(action), t(prev_action))
        else:
            out = self._sample(states_now, states_prev, t(action), t(prev_action),
                               noise((cfg.samples, len(ENTITIES), self.dynamics.max_change)))
        (_, cube), disagreement = out[0], out[1]
        cube = cube.numpy().astype(np.float64)
        move = cube - now[:, CUBE]
        norm = np.linalg.norm(move, axis=-1, keepdims=True)
        cube = now[:, CUBE] + move * np.minimum(1.0, MAX_CUBE_STEP / np.maximum(norm, 1e-9))
        if self.grasp is not None:
            # a held cube moves with the hand; one let go (or never held) above the table falls onto it
            cube[held] = now[held, CUBE] + (ee[held] - now[held, EE])
            free = ~held
            cube[free] = push_by_fingers(cube[free], now[free, YAW], ee[free], R[free], grip[free])
            z, z_before = now[:, CUBE][:, 2], prev[:, CUBE][:, 2]
            up = ~held & (z > CUBE_HALF + 0.002)
            falling = np.minimum(z[up] - z_before[up], 0.0) - self.grasp["fall"]  # its z velocity, then gravity
            cube[up, 2] = np.minimum(cube[up, 2], z[up] + falling)
        cube[:, 2] = np.maximum(cube[:, 2], CUBE_HALF)  # the table holds it up
        nxt = now.copy()
        nxt[:, Q], nxt[:, GRIP], nxt[:, EE], nxt[:, EULER], nxt[:, CUBE] = q, grip, ee, euler, cube
        return nxt.astype(np.float32), {"disagreement": disagreement.numpy()}

    def holding(self, world: np.ndarray, command: np.ndarray) -> np.ndarray:
        """(B, W) world, (B,) gripper command -> (B,) bool: the fingers hold the cube (the command closes them;
        their reading at least TOUCH and no more than the cube's own `hold` + SLACK, so they are not already
        narrower than the cube; and the cube sits in the grip: within `across`, `along` and `depth` of where a
        grasped cube sits in the hand's frame; with `turned`, `across` counts from the turned cube's edge,
        `turned_reach`). Always False without a `grasp` config."""
        if self.grasp is None:
            return np.zeros(len(world), bool)
        g = world[:, GRIP]
        rel, reach = grasp_frame(self.config["chain"], world)
        d = np.abs(rel - np.asarray(self.grasp["offset"]))
        if self.grasp.get("turned"):  # a cube turned in the hand reaches further across the pads
            d[:, 0] = np.maximum(d[:, 0] - reach, 0.0)
        near = (d[:, 0] < self.grasp["across"]) & (d[:, 1] < self.grasp["along"]) & (d[:, 2] < self.grasp["depth"])
        return (command >= 0.5) & (g >= TOUCH) & (g <= self.grasp["hold"] + SLACK) & near

    def observe(self, world: np.ndarray) -> np.ndarray:
        return np.clip(world[:, :14], self.spec.state.lower, self.spec.state.upper).astype(np.float32)

    # ------------------------------------------------------------------ rendering

    def keypoints(self, world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, W) -> base-frame keypoints (B, P, 3): link origins, hand, two fingertips, the cube's 8 corners,
        the target's 4 corners (`keypoint_groups` joins them); and the links' origins and rotations."""
        origins, ee, R, rots = forward(self.config["chain"], world[:, Q], frames=True)
        opening = 0.04 * (1.0 - world[:, GRIP, None]) + 0.008
        fingers = [ee + R[:, :, 1] * opening - R[:, :, 2] * 0.03, ee - R[:, :, 1] * opening - R[:, :, 2] * 0.03]
        c, s = np.cos(world[:, YAW]), np.sin(world[:, YAW])
        h = CUBE_HALF
        corners = np.array([[x, y, z] for z in (-h, h) for x, y in ((-h, -h), (h, -h), (h, h), (-h, h))])
        rot = np.stack([np.stack([c, -s, 0 * c], -1), np.stack([s, c, 0 * c], -1),
                        np.stack([0 * c, 0 * c, 1 + 0 * c], -1)], -2)
        cube = world[:, None, CUBE] + corners[None] @ rot.transpose(0, 2, 1)
        t = TARGET_HALF
        square = np.array([[-t, -t, 0], [t, -t, 0], [t, t, 0], [-t, t, 0]], np.float64)
        target = np.concatenate([world[:, TARGET], np.zeros((len(world), 1))], -1)[:, None] + square[None]
        points = np.concatenate([origins, ee[:, None], fingers[0][:, None], fingers[1][:, None], cube, target], 1)
        return points, origins, rots

    def camera_poses(self, name: str, origins: np.ndarray, rots: np.ndarray) -> np.ndarray:
        """(B, 4, 4) camera-to-base poses of camera `name` (OpenCV axes), given the links' origins (B, L, 3) and
        rotations (B, L, 3, 3) (the wrist camera rides on one)."""
        n = len(origins)
        if name in self.calibs:
            return np.broadcast_to(self.calibs[name].camera_to_world, (n, 4, 4))
        mount = self.config["mount"]
        R_cam = rots[:, mount["link"]] @ Rotation.from_quat(mount["quat"], scalar_first=True).as_matrix()
        pose = np.tile(np.eye(4), (n, 1, 1))
        pose[:, :3, :3] = R_cam @ np.diag([1.0, -1.0, -1.0])
        pose[:, :3, 3] = origins[:, mount["link"]] + rots[:, mount["link"]] @ np.asarray(mount["pos"])
        return pose

    def calibrations(self, world: np.ndarray) -> list[dict[str, CameraCalibration]]:
        """(B, W) -> per row each camera's calibration in that state: the exterior cameras' fixed ones, the wrist
        camera's pose from the state's joints through the chain (what the imagined frames are drawn from)."""
        _, origins, rots = self.keypoints(world)
        out = [{} for _ in range(len(world))]
        for name in self.cameras:
            poses = self.camera_poses(name, origins, rots)
            if name in self.calibs:
                base = self.calibs[name]
                K, W, H = base.K, base.width, base.height
            else:
                cam = self.spec.camera(name)
                f = 0.5 * cam.height / np.tan(np.deg2rad(self.config["mount"]["fovy"]) / 2)
                K, W, H = np.array([[f, 0, (cam.width - 1) / 2], [0, f, (cam.height - 1) / 2], [0, 0, 1]]), cam.width, cam.height
            for b in range(len(world)):
                out[b][name] = CameraCalibration.from_intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], W, H, None,
                                                                 np.array(poses[b]), name)
        return out

    def project(self, world: np.ndarray) -> np.ndarray:
        """(B, W) -> renderer inputs (B, cameras, P, 3): (u, v) in [-1, 1] across each camera's frame, log depth."""
        points, origins, rots = self.keypoints(world)
        out = []
        for name in self.cameras:
            cam = self.spec.camera(name)
            pose = self.camera_poses(name, origins, rots)
            rel = points - pose[:, None, :3, 3]
            p = np.einsum("bpi,bij->bpj", rel, pose[:, :3, :3])  # base -> camera: R^T (x - t)
            z = p[..., 2]
            if name in self.calibs:
                calib = self.calibs[name]
                fx, fy, cx, cy, W, H = calib.K[0, 0], calib.K[1, 1], calib.K[0, 2], calib.K[1, 2], calib.width, calib.height
            else:
                f = 0.5 * cam.height / np.tan(np.deg2rad(self.config["mount"]["fovy"]) / 2)
                fx = fy = f
                cx, cy, W, H = (cam.width - 1) / 2, (cam.height - 1) / 2, cam.width, cam.height
            zs = np.maximum(z, 1e-3)
            u = (fx * p[..., 0] / zs + cx + 0.5) / W * 2 - 1
            v = (fy * p[..., 1] / zs + cy + 0.5) / H * 2 - 1
            behind = z < 0.02
            u, v = np.where(behind, 5.0, u), np.where(behind, 5.0, v)
            out.append(np.stack([u, v, np.log(np.maximum(z, 0.02))], -1))
        return np.stack(out, 1).astype(np.float32)

    @torch.no_grad()
    def render(self, world: np.ndarray) -> dict[str, np.ndarray]:
        pts = torch.from_numpy(self.project(world))  # (B, C, P, 3)
        B, C = pts.shape[:2]
        cams = torch.arange(C).repeat(B)
        frames = self.renderer.draw(pts.reshape(B * C, *pts.shape[2:]), cams).reshape(B, C, *self._size(), 3)
        return {name: resize_to(frames[:, i], self.spec.camera(name).height, self.spec.camera(name).width)
                for i, name in enumerate(self.cameras)}

    def _size(self) -> tuple[int, int]:
        return self.renderer.cfg.height, self.renderer.cfg.width

    # ------------------------------------------------------------------ reward

    def reward(self, world: np.ndarray) -> np.ndarray:
        on_target = np.linalg.norm(world[:, CUBE][:, :2] - world[:, TARGET], axis=-1) < SUCCESS_RADIUS
        resting = world[:, CUBE][:, 2] < CUBE_HALF + 0.005
        return (on_target & resting & (world[:, GRIP] < RELEASED)).astype(np.float64)


def grasp_frame(chain: dict, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, W) -> the cube in the hand's frame, `in_hand` (B, 3), and its `turned_reach` (B,), from one pass of
    the chain's kinematics."""
    _, ee, R = forward(chain, world[:, Q])
    a = np.arctan2(R[:, 1, 0], R[:, 0, 0]) - world[:, YAW]  # the hand's x axis against a face's normal
    return np.einsum("bji,bj->bi", R, world[:, CUBE] - ee), CUBE_HALF * (np.abs(np.cos(a)) + np.abs(np.sin(a)) - 1.0)


def in_hand(chain: dict, world: np.ndarray) -> np.ndarray:
    """(B, W) -> (B, 3) where the cube sits from the hand, in the hand's frame (x across the fingers, y along
    their travel, z down them)."""
    return grasp_frame(chain, world)[0]


def turned_reach(chain: dict, world: np.ndarray) -> np.ndarray:
    """(B, W) -> (B,) m: how much further the cube reaches across the fingers' pads (the hand's x) than a cube
    whose faces are square to them, CUBE_HALF (|cos a| + |sin a| - 1) for the yaw a between the hand's x axis and
    a face's normal (geometry: 0 square to the faces, 1.04 cm at 45 degrees)."""
    return grasp_frame(chain, world)[1]


def finger_centres(ee: np.ndarray, R: np.ndarray, grip: np.ndarray) -> np.ndarray:
    """(B, 3) hand position, (B, 3, 3) rotation, (B,) gripper reading -> (B, 2, 3): where each finger's axis
    crosses the hand's height (the fingers open along the hand's y axis, 0.04 m each when open)."""
    opening = 0.04 * (1.0 - grip[:, None]) + 0.0075
    return np.stack([ee + R[:, :, 1] * opening, ee - R[:, :, 1] * opening], 1)


def push_by_fingers(cube: np.ndarray, yaw: np.ndarray, ee: np.ndarray, R: np.ndarray, grip: np.ndarray) -> np.ndarray:
    """A cube (B, 3) that a finger overlaps is pushed out of it, sideways on the table: each finger a vertical
    capsule (FINGER_RADIUS, FINGER_SPAN about the hand's height), the cube a box of CUBE_HALF turned by `yaw`;
    the cube moves the least distance that clears the finger (rigid contact, no rotation)."""
    cube = cube.copy()
    h, r = CUBE_HALF, FINGER_RADIUS
    c, s = np.cos(yaw), np.sin(yaw)
    for finger in np.moveaxis(finger_centres(ee, R, grip), 1, 0):
        low, high = finger[:, 2] + FINGER_SPAN[0], finger[:, 2] + FINGER_SPAN[1]
        level = (low < cube[:, 2] + h) & (high > cube[:, 2] - h)
        d = finger[:, :2] - cube[:, :2]
        q = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)  # the finger in the cube's frame
        outside = np.maximum(np.abs(q) - h, 0.0)
        gap = np.linalg.norm(outside, axis=-1)
        inside = (outside == 0).all(-1)
        move = np.zeros_like(q)
        # beside the box: out along the line from the nearest point of the box to the finger, by r - gap
        near = level & ~inside & (gap < r)
        move[near] = -(q[near] - np.clip(q[near], -h, h)) / np.maximum(gap[near, None], 1e-9) * (r - gap[near, None])
        # inside the box's footprint (a finger coming down on it): out along the axis it is least deep in
        deep = level & inside
        if deep.any():
            pen = h + r - np.abs(q[deep])
            axis = np.argmin(pen, -1)
            rows = np.flatnonzero(deep)
            move[rows, axis] = -np.sign(q[rows, axis]) * pen[np.arange(len(rows)), axis]
        cube[:, 0] += c * move[:, 0] - s * move[:, 1]
        cube[:, 1] += s * move[:, 0] + c * move[:, 1]
    return cube


def keypoint_groups(links: int) -> list:
    """The renderer's segment groups for `keypoints`' layout with `links` link origins: one group per link
    (origin to the next), the hand, the fingers, the cube's 12 edges, the target's 4 edges."""
    groups = [[[i, i + 1]] for i in range(links - 1)]
    hand, f1, f2 = links, links + 1, links + 2
    groups += [[[links - 1, hand]], [[hand, f1], [hand, f2], [f1, f2]]]
    c = links + 3
    edges = [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
    groups.append([[c + a, c + b] for a, b in edges])
    t = c + 8
    groups.append([[t + a, t + b] for a, b in [[0, 1], [1, 2], [2, 3], [3, 0]]])
    return groups
