"""Pose representations: absolute poses <-> Cosmos 3's 9-D delta actions (translation + rot6d).

Convention (Cosmos 3 action cookbook): an action is the transition between consecutive frames,
T actions for T+1 poses ("o0 --a0--> o1"). A 9-D delta is `[dx, dy, dz, r6]` where r6 is the
first two columns of the relative rotation matrix, column-major: `[R00, R10, R20, R01, R11, R21]`.

`frame="base"` (default, DROID's `add_poses`): p[k+1] = p[k] + dt and R[k+1] = dR @ R[k].
`frame="ee"`: both are expressed in the current end-effector frame: p[k+1] = p[k] + R[k] @ dt and
R[k+1] = R[k] @ dR. All rotation math goes through `scipy.spatial.transform.Rotation`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation
from ..errors import UserError

ROTATION_DIMS = {"rot6d": 6, "euler_xyz": 3, "quat_xyzw": 4, "matrix": 9}
FRAMES = ("base", "ee")


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 6): the first two columns, column-major."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.concatenate([matrix[..., :, 0], matrix[..., :, 1]], axis=-1)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt (Zhou et al. 2019), so any non-degenerate 6-vector maps
    to the nearest valid rotation; exact inverse of `matrix_to_rot6d` on rotation matrices."""
    rot6d = np.asarray(rot6d, dtype=np.float64)
    a1, a2 = rot6d[..., 0:3], rot6d[..., 3:6]
    n1 = np.linalg.norm(a1, axis=-1, keepdims=True)
    if np.any(n1 < 1e-8):
        raise UserError("rot6d: first column has zero length; a rot6d vector needs two non-parallel columns")
    b1 = a1 / n1
    a2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    n2 = np.linalg.norm(a2, axis=-1, keepdims=True)
    if np.any(n2 < 1e-8):
        raise UserError("rot6d: the two columns are parallel; a rot6d vector needs two non-parallel columns")
    b2 = a2 / n2
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def to_rotation(rot: np.ndarray, fmt: str) -> Rotation:
    """Rotations in any supported format -> scipy `Rotation` (a stack over the leading axis)."""
    rot = np.asarray(rot, dtype=np.float64)
    if fmt == "euler_xyz":  # DROID: scipy extrinsic "xyz" (droid/misc/transformations.py)
        return Rotation.from_euler("xyz", rot.reshape(-1, 3))
    if fmt == "quat_xyzw":  # scipy's scalar-last order
        return Rotation.from_quat(rot.reshape(-1, 4))
    if fmt == "matrix":
        return Rotation.from_matrix(rot.reshape(-1, 3, 3))
    if fmt == "rot6d":
        return Rotation.from_matrix(rot6d_to_matrix(rot.reshape(-1, 6)))
    raise UserError(f"rotation format {fmt!r} is not one of {sorted(ROTATION_DIMS)}")


def from_rotation(rotation: Rotation, fmt: str) -> np.ndarray:
    """scipy `Rotation` -> (N, dims) array in `fmt` (matrices as (N, 3, 3))."""
    if fmt == "euler_xyz":
        return rotation.as_euler("xyz")
    if fmt == "quat_xyzw":
        return rotation.as_quat(canonical=True)
    if fmt == "matrix":
        return rotation.as_matrix()
    if fmt == "rot6d":
        return matrix_to_rot6d(rotation.as_matrix())
    raise UserError(f"rotation format {fmt!r} is not one of {sorted(ROTATION_DIMS)}")


def pose_to_matrix(xyz: np.ndarray, rot: np.ndarray, fmt: str) -> np.ndarray:
    """(N, 3) positions + (N, ...) rotations -> (N, 4, 4) homogeneous transforms."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    out = np.tile(np.eye(4), (len(xyz), 1, 1))
    out[:, :3, :3] = to_rotation(rot, fmt).as_matrix()
    out[:, :3, 3] = xyz
    return out


def poses_to_deltas(xyz: np.ndarray, rot: np.ndarray, fmt: str, frame: str = "base") -> np.ndarray:
    """T+1 absolute poses -> T 9-D delta actions `[dt (3), rot6d (6)]`."""
    if frame not in FRAMES:
        raise UserError(f"frame {frame!r} is not one of {FRAMES}")
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    rotations = to_rotation(rot, fmt)
    if len(rotations) != len(xyz) or len(xyz) < 2:
        raise UserError(f"need >= 2 poses with matching xyz ({len(xyz)}) and rotation ({len(rotations)}) counts")
    r_prev, r_next = rotations[:-1], rotations[1:]
    dt = xyz[1:] - xyz[:-1]
    if frame == "base":
        d_rot = r_next * r_prev.inv()
    else:
        d_rot = r_prev.inv() * r_next
        dt = r_prev.inv().apply(dt)
    return np.concatenate([dt, matrix_to_rot6d(d_rot.as_matrix())], axis=-1)


def deltas_to_poses(
    xyz0: np.ndarray, rot0: np.ndarray, deltas: np.ndarray, fmt: str, frame: str = "base"
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate T 9-D deltas from a start pose -> T+1 absolute poses `(xyz (T+1, 3), rot in fmt)`."""
    if frame not in FRAMES:
        raise UserError(f"frame {frame!r} is not one of {FRAMES}")
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1, 9)
    xyz = [np.asarray(xyz0, dtype=np.float64).reshape(3)]
    rots = [to_rotation(rot0, fmt)[0]]
    d_rots = to_rotation(deltas[:, 3:], "rot6d")
    for k in range(len(deltas)):
        if frame == "base":
            xyz.append(xyz[-1] + deltas[k, :3])
            rots.append(d_rots[k] * rots[-1])
        else:
            xyz.append(xyz[-1] + rots[-1].apply(deltas[k, :3]))
            rots.append(rots[-1] * d_rots[k])
    return np.stack(xyz), from_rotation(Rotation.concatenate(rots), fmt)


def convert_gripper(value: np.ndarray, open_from: float, open_to: float) -> np.ndarray:
    """Map a [0, 1] gripper value between conventions (open = 0 or open = 1)."""
    for name, v in (("open_from", open_from), ("open_to", open_to)):
        if v not in (0, 1):
            raise UserError(f"{name} = {v!r}: a gripper convention is the value meaning open, 0 or 1")
    value = np.asarray(value, dtype=np.float64)
    return value if open_from == open_to else 1.0 - value


# Canonical gripper convention of the 10-D single-arm action: 0 = open, 1 = closed (as DROID).
CANONICAL_GRIPPER_OPEN = 0.0


def cartesian_to_canonical(
    cartesian: np.ndarray, gripper: np.ndarray, gripper_open: float = 0.0, frame: str = "base"
) -> np.ndarray:
    """DROID-style trajectory of T+1 states (xyz + euler_xyz (T+1, 6), gripper (T+1,)) -> T canonical
    10-D actions: 9-D pose delta + the gripper command of the frame the action leads to."""
    cartesian = np.asarray(cartesian, dtype=np.float64).reshape(-1, 6)
    gripper = np.asarray(gripper, dtype=np.float64).reshape(-1)
    if len(gripper) != len(cartesian):
        raise UserError(f"gripper has {len(gripper)} steps, cartesian has {len(cartesian)}; they must match")
    deltas = poses_to_deltas(cartesian[:, :3], cartesian[:, 3:], "euler_xyz", frame)
    g = convert_gripper(gripper[1:], gripper_open, CANONICAL_GRIPPER_OPEN)
    return np.concatenate([deltas, g[:, None]], axis=-1)


def canonical_to_cartesian(
    cartesian0: np.ndarray,
    gripper0: float,
    actions: np.ndarray,
    gripper_open: float = 0.0,
    frame: str = "base",
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `cartesian_to_canonical`: start state + T actions -> T+1 states (cartesian, gripper)."""
    actions = np.asarray(actions, dtype=np.float64).reshape(-1, 10)
    cartesian0 = np.asarray(cartesian0, dtype=np.float64).reshape(6)
    xyz, euler = deltas_to_poses(cartesian0[:3], cartesian0[3:], actions[:, :9], "euler_xyz", frame)
    g = convert_gripper(actions[:, 9], CANONICAL_GRIPPER_OPEN, gripper_open)
    return np.concatenate([xyz, euler], axis=-1), np.concatenate([[gripper0], g])
