"""The transfer-cube expert and its ladder: the right arm picks the red cube, carries it to a meeting point in
mid-air, and the left arm takes it (the waypoint plan of ACT's scripted `PickAndTransferPolicy`, Zhao et al.
2023, tonyzhaozh/act scripted_policy.py, here on gym-aloha's joint-position scene: our own inverse
kinematics of each arm's gripper on gym-aloha's model). The cube is found in the first `top` frame (its red
blob, cast onto the table through the camera's calibration); no simulator state is read.

Ladder (`make_aloha_policy`): `expert`; `expert-noise<s>` (Gaussian noise of s * 0.01 rad on every joint
target); `expert-offset<c>` (the cube seen c cm off, in a direction drawn per episode); `expert-drop<n>` (the
right hand lets go n steps before the left one closes); `expert-mix` (one of those drawn per episode, for
training data); `random`."""

from __future__ import annotations

import re

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ...embodiments import CameraCalibration
from ...embodiments.perception import largest_blob, pixel_rays_to_plane
from ...errors import UserError
from ...policies import RandomPolicy
from ...policies.base import Policy

CUBE_HALF = 0.02  # m (gym-aloha's red_box)
GRASP = np.array([0.105, 0.0, 0.0])  # m: the point between the fingertips, in the gripper_link frame
MEET = np.array([0.0, 0.5, 0.25])  # m: where the hand-over happens (ACT's meet_xyz)
RED = [((0, 120, 60), (8, 255, 255)), ((172, 120, 60), (180, 255, 255))]
ARMS = {"left": ("vx300s_left", 0), "right": ("vx300s_right", 7)}  # MuJoCo prefix, first index in the state
JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
OPEN, CLOSED = 1.0, 0.0
REPLAN, CLOSE_LEFT = 130, 150  # steps: the left arm's approach is planned; it starts to close
HANGS = np.array([0.008, 0.0, -0.019])  # m: where a held cube's centre hangs from the right hand's grasp point


def aloha_model():
    """gym-aloha's transfer-cube MuJoCo model (its own XML)."""
    import mujoco
    from gym_aloha.constants import ASSETS_DIR

    return mujoco.MjModel.from_xml_path(str(ASSETS_DIR / "bimanual_viperx_transfer_cube.xml"))


def top_calibration(model=None) -> CameraCalibration:
    """The `top` camera (fixed to the world) at gym-aloha's 480x640."""
    import mujoco

    model = model or aloha_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return CameraCalibration.from_mujoco(model, data, "top", 640, 480)


def find_cube(image: np.ndarray, calib: CameraCalibration) -> np.ndarray | None:
    """(480, 640, 3) RGB -> the cube's centre (3,) on the table, from its red blob; None when none is seen. The
    blob's centroid is the top face's centre more than the cube's: it is cast onto the top face's plane."""
    blob = largest_blob(image, RED)
    if blob is None:
        return None
    x, y, _ = pixel_rays_to_plane(calib, blob.mean(0)[None], 2 * CUBE_HALF)[0]
    return np.array([x, y, CUBE_HALF])


class ArmIK:
    """Damped least-squares inverse kinematics of one arm's grasp point (`GRASP` in its gripper_link) and the
    gripper's orientation, on its own copy of gym-aloha's model."""

    def __init__(self, model, arm: str):
        import mujoco

        self.mj, self.model, self.data = mujoco, model, mujoco.MjData(model)
        prefix, _ = ARMS[arm]
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{prefix}/{j}") for j in JOINTS]
        self.qadr = np.array([model.jnt_qposadr[j] for j in ids])
        self.dadr = np.array([model.jnt_dofadr[j] for j in ids])
        self.low, self.high = model.jnt_range[ids, 0], model.jnt_range[ids, 1]
        self.body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{prefix}/gripper_link")

    def pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints (6,) -> the grasp point (3,) and the gripper's rotation (3, 3)."""
        self.data.qpos[self.qadr] = q
        self.mj.mj_kinematics(self.model, self.data)
        self.mj.mj_comPos(self.model, self.data)  # the Jacobian reads the dofs' motion axes
        R = self.data.xmat[self.body].reshape(3, 3).copy()
        return self.data.xpos[self.body] + R @ GRASP, R

    def solve(self, q0: np.ndarray, pos: np.ndarray, R_goal: np.ndarray, iters: int = 60) -> np.ndarray:
        q = np.array(q0, np.float64)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(iters):
            p, R = self.pose(q)
            err = np.r_[pos - p, 0.5 * sum(np.cross(R[:, i], R_goal[:, i]) for i in range(3))]
            if np.abs(err).max() < 1e-4:
                break
            self.mj.mj_jac(self.model, self.data, jacp, jacr, p, self.body)
            J = np.r_[jacp[:, self.dadr], jacr[:, self.dadr]]
            q = np.clip(q + J.T @ np.linalg.solve(J @ J.T + 1e-4 * np.eye(6), err), self.low, self.high)
        return q


def _down(R0: np.ndarray, degrees: float) -> np.ndarray:
    """`R0` turned about the world's y axis so that a gripper pointing along -x tips `degrees` down."""
    return Rotation.from_euler("y", -degrees, degrees=True).as_matrix() @ R0


class TransferCubeExpert(Policy):
    """See the module docstring. `noise`: joint target noise (rad); `offset`: the cube's perceived place off by
    this many metres; `drop`: the right hand opens this many steps before the left one closes."""

    _shared: dict = {}

    def __init__(self, noise: float = 0.0, offset: float = 0.0, drop: int = 0, seed: int = 0, name: str = "expert"):
        self.noise, self.offset, self.drop, self.name = noise, offset, drop, name
        if "model" not in self._shared:
            model = aloha_model()
            self._shared.update(model=model, calib=top_calibration(model), ik={a: ArmIK(model, a) for a in ARMS})
        self.ik, self.calib = self._shared["ik"], self._shared["calib"]
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.plan, self.t = None, 0

    def _plan(self, state: np.ndarray, cube: np.ndarray) -> np.ndarray:
        """(T, 14) joint targets: waypoints per arm (step, grasp point, orientation, gripper), IK per step. The
        left arm's approach is planned again at `REPLAN` from where the right hand then holds the cube."""
        q = {a: state[i : i + 6] for a, (_, i) in ARMS.items()}
        R0 = {a: self.ik[a].pose(q[a])[1] for a in ARMS}
        p0 = {a: self.ik[a].pose(q[a])[0] for a in ARMS}
        self.pick = pick = _down(R0["right"], 45)
        self.side = side = R0["left"] @ Rotation.from_euler("x", 90, degrees=True).as_matrix()  # fingers along z
        c = CLOSE_LEFT
        right = [(0, p0["right"], R0["right"], OPEN), (55, cube + [0, 0, 0.08], pick, OPEN),
                 (80, cube + [0, 0, 0.0], pick, OPEN), (95, cube, pick, CLOSED),
                 (min(REPLAN, c + 9 - self.drop), MEET + [0.02, 0, 0], pick, CLOSED),
                 (c + 10 - self.drop, MEET + [0.02, 0, 0], pick, CLOSED),
                 (c + 20 - self.drop, MEET + [0.02, 0, 0], pick, OPEN), (c + 50, MEET + [0.12, 0, 0.05], pick, OPEN)]
        left = [(0, p0["left"], R0["left"], OPEN), (100, MEET + [-0.12, 0, 0], side, OPEN),
                (REPLAN, MEET + [-0.10, 0, 0], side, OPEN)]
        out = np.zeros((c + 60, 14))
        self._fill(out, "right", q["right"], right, 0)
        self._fill(out, "left", q["left"], left, 0)
        return out

    def _replan_left(self, state: np.ndarray) -> None:
        """From the held cube's place (the right hand's grasp point from its measured joints, plus where a held
        cube hangs in it): in front of the cube, onto it, close, back out."""
        held = self.ik["right"].pose(state[7:13])[0] + HANGS
        _, i = ARMS["left"]
        q = state[i : i + 6]
        c = CLOSE_LEFT
        start = self.ik["left"].pose(q)[0]
        points = [(REPLAN, start, self.side, OPEN), (c - 10, held + [-0.03, 0, 0], self.side, OPEN),
                  (c, held + [-0.01, 0, 0], self.side, OPEN), (c + 15, held + [-0.01, 0, 0], self.side, CLOSED),
                  (c + 50, MEET + [-0.12, 0, 0], self.side, CLOSED)]
        self._fill(self.plan, "left", q, points, REPLAN)

    def _fill(self, out: np.ndarray, arm: str, qa: np.ndarray, points: list, t0: int) -> None:
        _, i = ARMS[arm]
        steps = np.array([w[0] for w in points], np.float64)
        rots = Slerp(steps, Rotation.from_matrix(np.stack([w[2] for w in points])))
        for t in range(t0, len(out)):
            s = min(t + 1, steps[-1])
            pos = np.stack([np.interp(s, steps, [w[1][k] for w in points]) for k in range(3)])
            qa = self.ik[arm].solve(qa, pos, rots([s]).as_matrix()[0])
            out[t, i : i + 6] = qa
            k = np.searchsorted(steps, s, side="right") - 1
            out[t, i + 6] = points[k][3] if k + 1 >= len(points) else np.interp(
                s, steps[k : k + 2], [points[k][3], points[k + 1][3]])

    def select_action(self, observation: dict) -> np.ndarray:
        state = np.asarray(observation["observation.state"], np.float64)
        if self.plan is None:
            cube = find_cube(np.asarray(observation["observation.images.top"]), self.calib)
            if cube is None:
                raise UserError("transfer-cube expert: no red cube in the first top frame")
            if self.offset:
                a = self.rng.uniform(0, 2 * np.pi)
                cube = cube + self.offset * np.array([np.cos(a), np.sin(a), 0.0])
            self.plan = self._plan(state, cube)
        if self.t == REPLAN:
            self._replan_left(state)
        action = self.plan[min(self.t, len(self.plan) - 1)].copy()
        self.t += 1
        if self.noise:
            for _, i in ARMS.values():
                action[i : i + 6] += self.rng.normal(0, self.noise, 6)
        return action.astype(np.float32)


LADDER = ["expert", "expert-noise3", "expert-noise5", "expert-offset2", "expert-offset3", "expert-drop30", "random"]
MIX = ["expert", "expert", "expert-noise2", "expert-noise4", "expert-noise6", "expert-offset1", "expert-offset2",
       "expert-offset3", "expert-drop20", "expert-drop30", "expert-drop40"]


def make_aloha_policy(policy: str, seed: int = 0) -> Policy:
    """A transfer-cube policy by name (module docstring)."""
    from ...embodiments import load_spec

    if policy == "random":
        vec = load_spec("aloha").action
        return RandomPolicy(low=vec.lower, high=vec.upper, dims=vec.dims, seed=seed)
    if policy == "expert-mix":
        return MixPolicy(seed)
    m = re.fullmatch(r"expert(?:-(noise|offset|drop)(\d+(?:\.\d+)?))?", policy)
    if m is None:
        raise UserError(f"policy {policy!r} is not a transfer-cube policy; choose expert, expert-noise<s>, "
                         "expert-offset<cm>, expert-drop<steps>, expert-mix or random")
    kind, value = m.group(1), float(m.group(2) or 0)
    if kind == "drop" and not 0 <= value <= 60:
        raise UserError(f"policy {policy!r}: expert-drop<n> takes n from 0 to 60 steps")
    kwargs = {"noise": {"noise": value * 0.01}, "offset": {"offset": value * 0.01},
              "drop": {"drop": int(value)}}.get(kind, {})
    return TransferCubeExpert(seed=seed, name=policy, **kwargs)


class MixPolicy(Policy):
    """One of `MIX` drawn per episode (training data that covers the ladder's behaviours and more)."""

    def __init__(self, seed: int = 0):
        self.name, self.seed = "expert-mix", seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.inner = make_aloha_policy(MIX[int(rng.integers(len(MIX)))], seed=seed or 0)

    def select_action(self, observation: dict) -> np.ndarray:
        return self.inner.select_action(observation)
