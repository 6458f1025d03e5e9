"""The Panda's forward kinematics as numbers, read once from the robot model: what a URDF gives a learned
simulator (link offsets, joint axes), so stepping needs no MuJoCo. `forward` gives every link's origin and
the end-effector pose for a batch of joint positions."""

from __future__ import annotations

import numpy as np


def _chain(model, site: str = "end_effector") -> list[int]:
    """Body ids from the base's first child to the body holding `site`."""
    import mujoco

    body = int(model.site_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)])
    chain = []
    while body != 0:
        chain.append(body)
        body = int(model.body_parentid[body])
    return chain[::-1]


def chain_parameters(model=None, site: str = "end_effector") -> dict:
    """The kinematic chain from the base to `site`: per body its offset in the parent (pos, quat w-first)
    and, where it turns, the index of its hinge joint among the arm's joints and its axis; then the site's
    offset in the last body. JSON-ready lists (a learned checkpoint stores them)."""
    import mujoco

    from .real import franka_model

    model = model or franka_model()
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
    bodies = []
    for b in _chain(model, site):
        joints = [j for j in range(model.njnt) if model.jnt_bodyid[j] == b]
        hinge = [j for j in joints if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        bodies.append({"pos": model.body_pos[b].tolist(), "quat": model.body_quat[b].tolist(),
                       "joint": int(model.jnt_qposadr[hinge[0]]) if hinge else -1,
                       "axis": model.jnt_axis[hinge[0]].tolist() if hinge else [0.0, 0.0, 1.0]})
    return {"bodies": bodies, "site_pos": model.site_pos[sid].tolist(), "site_quat": model.site_quat[sid].tolist()}


def _rot(quat_wxyz) -> np.ndarray:
    """A unit quaternion (w first) -> its rotation matrix."""
    w, x, y, z = np.asarray(quat_wxyz, np.float64) / np.linalg.norm(quat_wxyz)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _turn(axis, angles: np.ndarray) -> np.ndarray:
    """Rotations by `angles` (B,) about the unit `axis` (Rodrigues) -> (B, 3, 3)."""
    x, y, z = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    K = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angles)[:, None, None] * K + (1 - np.cos(angles))[:, None, None] * (K @ K)


def forward(chain: dict, q: np.ndarray, frames: bool = False):
    """Joint positions (B, 7) -> link origins (B, L, 3), end-effector position (B, 3) and rotation (B, 3, 3),
    in the base frame (and with `frames`, every link's rotation (B, L, 3, 3) after them)."""
    q = np.asarray(q, np.float64)
    B = len(q)
    R = np.broadcast_to(np.eye(3), (B, 3, 3)).copy()
    p = np.zeros((B, 3))
    origins, rotations = [], []
    for body in chain["bodies"]:
        p = p + R @ np.asarray(body["pos"])
        R = R @ _rot(body["quat"])
        if body["joint"] >= 0:
            R = R @ _turn(body["axis"], q[:, body["joint"]])
        origins.append(p)
        rotations.append(R)
    ee = p + R @ np.asarray(chain["site_pos"])
    out = (np.stack(origins, 1), ee, R @ _rot(chain["site_quat"]))
    return (*out, np.stack(rotations, 1)) if frames else out


def camera_mount(model=None, camera: str = "wrist_left") -> dict:
    """A camera fixed to a link: the link's index in `chain_parameters`' bodies and the camera's offset in
    it (MuJoCo cameras look down their -z; see `CameraCalibration.from_mujoco`)."""
    import mujoco

    from .real import franka_model

    model = model or franka_model()
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    return {"link": _chain(model).index(int(model.cam_bodyid[cid])), "pos": model.cam_pos[cid].tolist(), "quat": model.cam_quat[cid].tolist(),
            "fovy": float(model.cam_fovy[cid])}
