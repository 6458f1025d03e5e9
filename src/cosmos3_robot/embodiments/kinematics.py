"""A MuJoCo arm's forward kinematics as numbers, read once from its model: what a URDF gives a learned
simulator (link offsets, joint axes), so stepping needs no MuJoCo. `forward` gives every link's origin and
the end point's pose for a batch of joint positions."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def _end(model, site: str | None, body: str | None) -> tuple[int, np.ndarray, np.ndarray]:
    """The chain's end: (body id, offset in that body, quat w-first) of `site`, or of `body`'s origin."""
    import mujoco

    if (site is None) == (body is None):
        raise UserError("kinematics: name exactly one of site= or body= as the chain's end")
    if site is not None:
        sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if sid < 0:
            raise UserError(f"kinematics: the MuJoCo model has no site {site!r}")
        return int(model.site_bodyid[sid]), model.site_pos[sid].copy(), model.site_quat[sid].copy()
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
    if bid < 0:
        raise UserError(f"kinematics: the MuJoCo model has no body {body!r}")
    return bid, np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0])


def body_chain(model, end_body: int) -> list[int]:
    """Body ids from the world's child to `end_body`."""
    body, chain = end_body, []
    while body != 0:
        chain.append(body)
        body = int(model.body_parentid[body])
    return chain[::-1]


def chain_parameters(model, site: str | None = None, body: str | None = None) -> dict:
    """The kinematic chain from the world to `site` (or to `body`'s origin): per body its offset in the parent
    (pos, quat w-first) and, where it turns, the qpos address of its hinge joint and its axis; then the end's
    offset in the last body. JSON-ready lists (a learned checkpoint stores them)."""
    import mujoco

    end, pos, quat = _end(model, site, body)
    bodies = []
    for b in body_chain(model, end):
        joints = [j for j in range(model.njnt) if model.jnt_bodyid[j] == b]
        hinge = [j for j in joints if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        bodies.append({"pos": model.body_pos[b].tolist(), "quat": model.body_quat[b].tolist(),
                       "joint": int(model.jnt_qposadr[hinge[0]]) if hinge else -1,
                       "axis": model.jnt_axis[hinge[0]].tolist() if hinge else [0.0, 0.0, 1.0]})
    return {"bodies": bodies, "site_pos": pos.tolist(), "site_quat": quat.tolist()}


def shift_joints(chain: dict, offset: int) -> dict:
    """The chain with every joint index moved by `offset` (an arm whose joints sit elsewhere in the state
    than in MuJoCo's qpos)."""
    return {**chain, "bodies": [{**b, "joint": b["joint"] + offset if b["joint"] >= 0 else -1} for b in chain["bodies"]]}


def rotation(quat_wxyz) -> np.ndarray:
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
    """Joint positions (B, J) -> link origins (B, L, 3), the end's position (B, 3) and rotation (B, 3, 3), in the
    world frame (and with `frames`, every link's rotation (B, L, 3, 3) after them)."""
    q = np.asarray(q, np.float64)
    B = len(q)
    R = np.broadcast_to(np.eye(3), (B, 3, 3)).copy()
    p = np.zeros((B, 3))
    origins, rotations = [], []
    for body in chain["bodies"]:
        p = p + R @ np.asarray(body["pos"])
        R = R @ rotation(body["quat"])
        if body["joint"] >= 0:
            R = R @ _turn(body["axis"], q[:, body["joint"]])
        origins.append(p)
        rotations.append(R)
    ee = p + R @ np.asarray(chain["site_pos"])
    out = (np.stack(origins, 1), ee, R @ rotation(chain["site_quat"]))
    return (*out, np.stack(rotations, 1)) if frames else out


def camera_mount(model, camera: str, site: str | None = None, body: str | None = None) -> dict:
    """A camera fixed to a link of the chain to `site` / `body`: the link's index in `chain_parameters`' bodies
    and the camera's offset in it (MuJoCo cameras look down their -z; see `CameraCalibration.from_mujoco`)."""
    import mujoco

    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    end, _, _ = _end(model, site, body)
    return {"link": body_chain(model, end).index(int(model.cam_bodyid[cid])), "pos": model.cam_pos[cid].tolist(),
            "quat": model.cam_quat[cid].tolist(), "fovy": float(model.cam_fovy[cid])}
