"""A single-arm Franka tabletop scene in MuJoCo for the `droid` spec: pick the red cube, place it on
the green target, seen by two exterior cameras and a wrist camera (DROID's camera names, 180x320).

The Franka Panda model (links, meshes, joint limits, position actuators) is the one gymnasium-robotics
ships for FrankaKitchen (Apache-2.0, from vikashplus/franka); it is installed from PyPI, so nothing
is fetched at run time. (mujoco-menagerie's Panda + Robotiq 2F-85 would be closer to DROID, but that
package downloads its models from GitHub on first use.) The gripper is the Franka hand; its opening
is reported in DROID's convention (0 = open, 1 = closed).

The world frame is the robot base frame (DROID reports cartesian poses in the base frame); the table
top is the plane z = 0. Cameras export their intrinsics/extrinsics as `CameraCalibration`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import util
from pathlib import Path

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from ...embodiments import CameraCalibration, action_space_for, load_spec, observation_space_for, validate_action
from ...errors import UserError

CONTROL_HZ = 15.0  # DROID control rate (droid.toml)
CUBE_HALF = 0.025  # m
FINGER_OPEN = 0.04  # m per finger: the Panda hand's slide-joint range [0, 0.04]
# Cube and target are drawn in this box on the table (base frame, m): within the Panda's reach.
CUBE_XY_LOW, CUBE_XY_HIGH = np.array([0.40, -0.20]), np.array([0.60, 0.20])
MIN_CUBE_TARGET = 0.12  # m between the cube's and the target's start positions
SUCCESS_RADIUS = 0.03  # m: cube centre within this of the target centre, resting on the table, released
# Panda joints at the start: gripper about 0.3 m above the table, pointing down (found with FrankaIK).
HOME_QPOS = np.array([0.0, -0.55, 0.0, -2.35, 0.0, 0.24, 0.785])
# Cameras: (position, look-at point, vertical field of view in degrees); ZED 2 (DROID's exteriors)
# has a ~70 degree vertical field of view at 16:9.
EXTERIOR_CAMERAS = {
    "exterior_1_left": ((1.2, 0.7, 1.0), (0.4, 0.0, 0.1), 55.0),
    "exterior_2_left": ((1.2, -0.7, 1.0), (0.4, 0.0, 0.1), 55.0),
}
# Wrist camera in link 7's frame: beside the hand (across the fingers' travel), looking down the gripper.
WRIST_CAMERA = ((0.06, -0.06, 0.09), (0.0, 0.0, 0.30), (0.707, -0.707, 0.0), 75.0)  # pos, look-at, up, fovy
# Stereo baselines (m): DROID's exterior cameras are ZED 2 (120 mm between the eyes), its wrist camera a ZED Mini
# (63 mm), per Stereolabs' datasheets. Each spec camera is the left eye; its right eye sits one baseline along the
# camera's +x (image right) and is named with `_right` for `_left` (`right_eye`).
STEREO_BASELINE = {"exterior_1_left": 0.12, "exterior_2_left": 0.12, "wrist_left": 0.063}


def right_eye(name: str) -> str:
    """The MuJoCo camera of `name`'s right eye: exterior_1_left -> exterior_1_right."""
    return name[: -len("_left")] + "_right" if name.endswith("_left") else name + "_right"


def _right_pos(pos, target, up, baseline: float) -> tuple:
    x = np.array([float(v) for v in _xyaxes(pos, target, up).split()[:3]])
    return tuple(np.round(np.asarray(pos, float) + baseline * x, 6))


def franka_assets() -> Path:
    spec = util.find_spec("gymnasium_robotics")
    if spec is None or spec.origin is None:
        raise ImportError("the Franka scene needs gymnasium-robotics (Panda model); pip install gymnasium-robotics")
    path = Path(spec.origin).parent / "envs" / "assets" / "kitchen_franka" / "franka_assets"
    if not (path / "chain.xml").is_file():
        raise FileNotFoundError(f"no Franka Panda model at {path}: gymnasium-robotics' assets are missing")
    return path


def _include(path: Path) -> str:
    """The body of a MuJoCo <mujocoinclude> file, without the wrapper and comments."""
    text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
    return re.sub(r"</?mujocoinclude>", "", text)


def _xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MuJoCo camera axes looking from `pos` at `target` (cameras look along their -z, y toward `up`)."""
    z = np.asarray(pos, float) - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return " ".join(f"{v:.6f}" for v in (*x, *y))


@lru_cache(maxsize=1)
def scene_xml() -> str:
    assets = franka_assets()
    chain = _include(assets / "chain.xml")
    pos, target, up, fovy = WRIST_CAMERA
    wrist = "\n".join(
        f'<camera name="{n}" pos="{" ".join(map(str, p))}" xyaxes="{_xyaxes(pos, target, up)}" fovy="{fovy}"/>'
        for n, p in (("wrist_left", pos),
                     (right_eye("wrist_left"), _right_pos(pos, target, up, STEREO_BASELINE["wrist_left"]))))
    chain = chain.replace("<site name='end_effector'", wrist + "\n<site name='end_effector'")
    # gravity compensation, as the real Panda's controller does: position targets hold without sag
    chain = re.sub(r'<body name="(panda0_[^"]*)"', r'<body name="\1" gravcomp="1"', chain)
    cameras = "\n".join(f'<camera name="{n}" pos="{" ".join(map(str, p))}" xyaxes="{_xyaxes(p0, t)}" fovy="{f}"/>'
                        for name, (p0, t, f) in EXTERIOR_CAMERAS.items()
                        for n, p in ((name, p0), (right_eye(name), _right_pos(p0, t, (0.0, 0.0, 1.0),
                                                                              STEREO_BASELINE[name]))))
    header = _include(assets / "assets.xml").replace('meshdir="franka_assets/meshes"', f'meshdir="{assets / "meshes"}"')
    return f"""<mujoco model="cosmos3_franka_cube">
{header}
<visual><global offwidth="640" offheight="480"/><quality shadowsize="1024"/></visual>
<asset>
  <texture name="wood" type="2d" builtin="flat" rgb1=".62 .5 .36" width="64" height="64"/>
  <material name="table" texture="wood" rgba="1 1 1 1"/>
</asset>
<worldbody>
  <light pos="0.5 0 1.5" dir="0 0 -1" diffuse=".7 .7 .7"/>
  <light pos="-0.5 0.8 1.2" dir="0.5 -0.6 -1" diffuse=".4 .4 .4" directional="true"/>
  <geom name="table" type="plane" size="1.2 1.2 0.05" material="table" contype="1" conaffinity="1"/>
  {cameras}
  <body name="robot_base" pos="0 0 0">{chain}</body>
  <body name="cube" pos="0.5 0 {CUBE_HALF}">
    <freejoint name="cube"/>
    <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" rgba=".85 .1 .1 1" mass="0.05"
          friction="1.5 0.02 0.0001" condim="4"/>
  </body>
  <body name="target" mocap="true" pos="0.5 0.2 0.0005">
    <geom name="target" type="box" size="0.04 0.04 0.0005" rgba=".1 .75 .2 1" contype="0" conaffinity="0"/>
  </body>
</worldbody>
{_include(assets / "actuator.xml")}
</mujoco>"""


@lru_cache(maxsize=1)
def franka_model():
    import mujoco

    return mujoco.MjModel.from_xml_string(scene_xml())


def exterior_calibrations() -> dict[str, CameraCalibration]:
    """The fixed exterior cameras' calibrations (what a DROID lab stores per scene); the wrist
    camera moves with the arm, see `FrankaCubeRealEnv.calibrations`."""
    import mujoco

    model = franka_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    spec = load_spec("droid")
    return {n: CameraCalibration.from_mujoco(model, data, n, spec.camera(n).width, spec.camera(n).height)
            for n in EXTERIOR_CAMERAS}


class FrankaIK:
    """Damped least-squares inverse kinematics of the Panda's `end_effector` site on its own MuJoCo
    data (a policy's kinematic model of the robot: it never reads the simulator's state)."""

    def __init__(self, model=None):
        import mujoco

        self.mj = mujoco
        self.model = model or franka_model()
        self.data = mujoco.MjData(self.model)
        self.site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
        self.lower, self.upper = self.model.jnt_range[:7, 0], self.model.jnt_range[:7, 1]

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions (7,) -> end-effector position (3,) and rotation matrix (3, 3)."""
        self.data.qpos[:7] = q
        self.mj.mj_kinematics(self.model, self.data)
        self.mj.mj_comPos(self.model, self.data)  # the Jacobian needs the com-based motion dofs
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, q0: np.ndarray, pos: np.ndarray, rot: np.ndarray, iters: int = 30, damping: float = 1e-2,
              max_step: float = 0.2) -> np.ndarray:
        """Joint positions near `q0` that put the end effector at `pos` with orientation `rot`."""
        q = np.array(q0, float)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(iters):
            p, r = self.forward(q)
            err = np.concatenate([pos - p, Rotation.from_matrix(rot @ r.T).as_rotvec()])
            if np.linalg.norm(err) < 1e-5:
                break
            self.mj.mj_jacSite(self.model, self.data, jacp, jacr, self.site)
            J = np.vstack([jacp, jacr])[:, :7]
            dq = J.T @ np.linalg.solve(J @ J.T + damping * np.eye(6), err)
            q = np.clip(q + np.clip(dq, -max_step, max_step), self.lower, self.upper)
        return q


class FrankaCubeRealEnv(gym.Env):
    """Franka pick-and-place in MuJoCo in the `droid` spec's schema (see module docstring).

    Action: DROID's native `joint_position` (7 joint targets in rad + gripper 0 = open .. 1 = closed)
    by default, or `cartesian_position` (xyz + euler "xyz" of the end effector, base frame, + gripper)
    solved to joint targets with `FrankaIK`. Observation: the three cameras (180x320) and the 14-D
    DROID robot state (joint positions, gripper, cartesian position). Reward: 1 on success (cube on
    the target, released), else 0. Renders headless with MUJOCO_GL=egl.

    `cameras` renders only the cameras a run needs (default: all three; [] for state only) and `image_size`
    (height, width) renders them at that size instead of the spec's; the observation space follows. Each
    step renders `renders_per_step` = len(cameras) MuJoCo frames (counted in `renders`). `shadows` turns on
    MuJoCo's shadow and reflection passes: about 4x the cost of a frame in software rendering (98 against 23 ms
    for one 180x320 camera here), so they are off by default."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, action_variant: str = "joint_position", max_episode_steps: int = 200,
                 render_mode: str = "rgb_array", out_of_limits: str = "clip", cameras: list[str] | None = None,
                 image_size: tuple[int, int] | None = None, shadows: bool = False):
        import mujoco

        if action_variant not in ("joint_position", "cartesian_position"):
            raise UserError(f"action_variant {action_variant!r} is not one of ['cartesian_position', 'joint_position']")
        self.mj = mujoco
        self.embodiment = load_spec("droid")
        self.action_variant, self.out_of_limits = action_variant, out_of_limits
        self.max_episode_steps, self.render_mode = max_episode_steps, render_mode
        self.model = franka_model()
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:7] = HOME_QPOS
        mujoco.mj_forward(self.model, self.data)  # camera poses valid before the first reset
        self.n_substeps = int(round(1.0 / CONTROL_HZ / self.model.opt.timestep))
        names = [c.name for c in self.embodiment.cameras]
        self.cameras = list(names if cameras is None else cameras)
        unknown = [c for c in self.cameras if c not in names]
        if unknown:
            raise UserError(f"cameras={self.cameras}: {unknown} not in the droid spec's {names}")
        if image_size is not None and (len(image_size) != 2 or min(image_size) < 8):
            raise UserError(f"image_size={image_size}; give (height, width), each at least 8 pixels")
        self.sizes = {c.name: tuple(image_size) if image_size else (c.height, c.width) for c in self.embodiment.cameras}
        self._renderers: dict = {}
        self.shadows = bool(shadows)
        self.renders_per_step, self.renders = len(self.cameras), 0
        space = observation_space_for(self.embodiment, self.cameras or None)
        self.observation_space = gym.spaces.Dict(
            {**{self.embodiment.camera(c).key: gym.spaces.Box(0, 255, (*self.sizes[c], 3), np.uint8)
                for c in self.cameras}, "observation.state": space["observation.state"]})
        self.action_space = action_space_for(self.embodiment, action_variant)
        self._ik = FrankaIK(self.model) if action_variant == "cartesian_position" else None
        self._site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
        self._cube_q = self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "cube")]
        self._target_mocap = self.model.body_mocapid[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "target")]
        self._cube_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "cube")
        robot_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "robot_base")
        self._robot_geoms = np.array([self.model.body_rootid[b] == robot_body for b in self.model.geom_bodyid])
        self._steps = 0
        self._last_obs = None

    # ------------------------------------------------------------------ state

    def cube_position(self) -> np.ndarray:
        return self.data.qpos[self._cube_q : self._cube_q + 3].copy()

    def target_position(self) -> np.ndarray:
        return self.data.mocap_pos[self._target_mocap].copy()

    def gripper_fraction(self) -> float:
        """DROID convention: 0 = open, 1 = closed (mean finger opening over the 0.04 m range)."""
        return float(np.clip(1.0 - self.data.qpos[7:9].mean() / FINGER_OPEN, 0.0, 1.0))

    def robot_state(self) -> np.ndarray:
        pos = self.data.site_xpos[self._site]
        euler = Rotation.from_matrix(self.data.site_xmat[self._site].reshape(3, 3)).as_euler("xyz")
        return np.concatenate([self.data.qpos[:7], [self.gripper_fraction()], pos, euler]).astype(np.float32)

    def get_state(self) -> np.ndarray:
        """Full MuJoCo physics state (time, qpos, qvel, act, mocap pose, ...) as `mj_getState` gives it."""
        spec = self.mj.mjtState.mjSTATE_INTEGRATION
        out = np.zeros(self.mj.mj_stateSize(self.model, spec))
        self.mj.mj_getState(self.model, self.data, out, spec)
        return out

    def _set_state(self, state: np.ndarray) -> None:
        spec = self.mj.mjtState.mjSTATE_INTEGRATION
        size = self.mj.mj_stateSize(self.model, spec)
        if state.shape != (size,):
            raise UserError(f"Franka state has shape {state.shape}, expected ({size},) as get_state() returns")
        self.mj.mj_setState(self.model, self.data, state, spec)
        self.mj.mj_forward(self.model, self.data)

    def calibrations(self) -> dict[str, CameraCalibration]:
        """Every camera's intrinsics and camera-to-base extrinsics at the current state (the wrist
        camera moves with the arm)."""
        return {c.name: CameraCalibration.from_mujoco(self.model, self.data, c.name, self.sizes[c.name][1],
                                                      self.sizes[c.name][0])
                for c in self.embodiment.cameras}

    # ------------------------------------------------------------------ gym API

    def _render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        if size not in self._renderers:  # one renderer per frame size
            self._renderers[size] = self.mj.Renderer(self.model, *size)
        renderer = self._renderers[size]
        renderer.update_scene(self.data, camera=camera)
        renderer.scene.flags[self.mj.mjtRndFlag.mjRND_SHADOW] = self.shadows
        renderer.scene.flags[self.mj.mjtRndFlag.mjRND_REFLECTION] = self.shadows
        self.renders += 1
        return renderer.render().copy()

    def stereo(self) -> dict[str, tuple[np.ndarray, CameraCalibration]]:
        """Each rendered camera's right-eye view at the current state and that eye's calibration (ZED cameras
        are stereo, and DROID's MP4s hold both eyes side by side; see `STEREO_BASELINE`)."""
        out = {}
        for name in self.cameras:
            h, w = self.sizes[name]
            calib = CameraCalibration.from_mujoco(self.model, self.data, right_eye(name), w, h)
            out[name] = (self._render(right_eye(name), (h, w)), calib)
        return out

    def robot_state_extras(self) -> dict[str, np.ndarray]:
        """What DROID's robot_state holds beyond the spec's state (droid/franka/robot.py `get_robot_state`), as the
        scene measures it: joint velocities (rad/s) and the arm actuators' torques (N m) of the last step. The
        scene's position servo computes its torque inside MuJoCo, so `joint_torques_computed` and
        `motor_torques_measured` are the same numbers here."""
        torque = self.data.actuator_force[:7].astype(np.float64)
        return {"joint_velocities": self.data.qvel[:7].astype(np.float64).copy(),
                "joint_torques_computed": torque.copy(), "motor_torques_measured": torque.copy()}

    def _obs(self) -> dict:
        obs = {}
        for name in self.cameras:
            obs[self.embodiment.camera(name).key] = self._render(name, self.sizes[name])
        obs["observation.state"] = np.clip(self.robot_state(), self.observation_space["observation.state"].low,
                                           self.observation_space["observation.state"].high)
        return obs

    def cube_touched(self) -> bool:
        """Is any robot geom in contact with the cube?"""
        d = self.data
        for i in range(d.ncon):
            g1, g2 = d.contact.geom1[i], d.contact.geom2[i]
            if self._cube_geom in (g1, g2) and (self._robot_geoms[g1] or self._robot_geoms[g2]):
                return True
        return False

    def is_success(self) -> bool:
        """Cube on the target (centre within SUCCESS_RADIUS), resting on the table, and let go."""
        cube = self.cube_position()
        on_target = np.linalg.norm(cube[:2] - self.target_position()[:2]) < SUCCESS_RADIUS
        return bool(on_target and cube[2] < CUBE_HALF + 0.005 and not self.cube_touched())

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        m, d = self.model, self.data
        self.mj.mj_resetData(m, d)
        d.qpos[:7] = HOME_QPOS
        d.qpos[7:9] = FINGER_OPEN
        d.ctrl[:7], d.ctrl[7:9] = HOME_QPOS, FINGER_OPEN
        cube = self.np_random.uniform(CUBE_XY_LOW, CUBE_XY_HIGH)
        target = self.np_random.uniform(CUBE_XY_LOW, CUBE_XY_HIGH)
        while np.linalg.norm(target - cube) < MIN_CUBE_TARGET:
            target = self.np_random.uniform(CUBE_XY_LOW, CUBE_XY_HIGH)
        yaw = self.np_random.uniform(-np.pi / 4, np.pi / 4)
        d.qpos[self._cube_q : self._cube_q + 7] = [*cube, CUBE_HALF, *Rotation.from_euler("z", yaw).as_quat(
            scalar_first=True)]
        d.mocap_pos[self._target_mocap] = [*target, 0.0005]
        self.mj.mj_forward(m, d)
        if options is not None and options.get("state") is not None:
            self._set_state(np.asarray(options["state"], np.float64))
        self._steps = 0
        self._last_obs = self._obs()
        return self._last_obs, {"is_success": False, "state": self.get_state(), "cube": self.cube_position(),
                                "target": self.target_position()}

    def _joint_targets(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        if self.action_variant == "joint_position":
            return action[:7].astype(np.float64), float(action[7])
        rot = Rotation.from_euler("xyz", action[3:6]).as_matrix()
        return self._ik.solve(self.data.qpos[:7], action[:3].astype(np.float64), rot), float(action[6])

    def step(self, action):
        checked: dict = {}
        action = validate_action(self.embodiment, action, variant=self.action_variant,
                                 out_of_limits=self.out_of_limits, allow_chunk=False, report=checked)
        q, grip = self._joint_targets(action)
        self.data.ctrl[:7] = np.clip(q, self.model.actuator_ctrlrange[:7, 0], self.model.actuator_ctrlrange[:7, 1])
        self.data.ctrl[7:9] = FINGER_OPEN * (1.0 - grip)
        self.mj.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._steps += 1
        success = self.is_success()
        self._last_obs = self._obs()
        info = {"is_success": success, "state": self.get_state(), "cube": self.cube_position(),
                "target": self.target_position(), "action_clipped": checked["clipped"]}
        return self._last_obs, float(success), success, self._steps >= self.max_episode_steps, info

    def render(self):
        if self._last_obs is None or not self.cameras:
            return None
        return self._last_obs[self.embodiment.camera(self.cameras[0]).key].copy()

    def close(self):
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers = {}
