"""Geometry of the entity tokens: state layouts per kind, rotation vectors, frames, and an entity's change in
its own frame (`own_change` / `apply_change`), shared by the Generator tower's dynamics and policy modes."""

from __future__ import annotations

import math

import torch


KINDS = {"point2": (2, False), "se2": (2, True), "point3": (3, False), "se3": (3, True)}  # (dims, turns)


def state_dims(kind: str) -> int:
    d, turns = KINDS[kind]
    return d + (d * (d - 1) // 2 if turns else 0)  # se2: 3, se3: 6


def change_dims(kind: str) -> int:
    return state_dims(kind)  # a change is a translation in the entity's frame plus an angle / rotation vector


# ---------------------------------------------------------------------------------------------- geometry


def _rot2(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rotvec_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotation vectors (..., 3) -> matrices (..., 3, 3)."""
    theta = w.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = w / theta
    zero = torch.zeros_like(k[..., 0])
    K = torch.stack([torch.stack([zero, -k[..., 2], k[..., 1]], -1), torch.stack([k[..., 2], zero, -k[..., 0]], -1),
                     torch.stack([-k[..., 1], k[..., 0], zero], -1)], -2)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=w.dtype).expand(K.shape)
    small = (w.norm(dim=-1) < 1e-8)[..., None, None]
    return torch.where(small, eye, eye + s * K + (1 - c) * (K @ K))


def matrix_to_rotvec(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> rotation vectors (..., 3) (angles below pi)."""
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(cos)
    axis = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    scale = torch.where(theta < 1e-6, 0.5 * torch.ones_like(theta), theta / (2 * torch.sin(theta)))
    return axis * scale[..., None]


def split_pose(state: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(..., state_dims) -> position (..., d) and rotation matrix (..., d, d) (None for a point)."""
    d, turns = KINDS[kind]
    if not turns:
        return state[..., :d], None
    return state[..., :d], (_rot2(state[..., 2]) if d == 2 else rotvec_to_matrix(state[..., 3:6]))


def rotation_features(R: torch.Tensor) -> torch.Tensor:
    """A continuous code of a rotation: (cos, sin) in 2-D, the first two columns in 3-D (Zhou et al. 2019)."""
    if R.shape[-1] == 2:
        return R[..., :, 0]
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


def in_frame(points: torch.Tensor, origin: torch.Tensor, R: torch.Tensor | None) -> torch.Tensor:
    """World points (..., d) -> the frame at `origin` turned by R (None: translated only)."""
    v = points - origin
    return v if R is None else torch.einsum("...ji,...j->...i", R, v)


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def own_change(state: torch.Tensor, nxt: torch.Tensor, kind: str) -> torch.Tensor:
    """The change from `state` to `nxt` in the entity's own frame (translation, then angle / rotation vector)."""
    p, R = split_pose(state, kind)
    q, Rn = split_pose(nxt, kind)
    out = [in_frame(q, p, R)]
    if R is not None:
        out.append(_wrap(nxt[..., 2:3] - state[..., 2:3]) if R.shape[-1] == 2
                   else matrix_to_rotvec(R.transpose(-1, -2) @ Rn))
    return torch.cat(out, -1)


def apply_change(state: torch.Tensor, change: torch.Tensor, kind: str) -> torch.Tensor:
    """Inverse of `own_change`: the next state from a change in the entity's own frame."""
    d, turns = KINDS[kind]
    p, R = split_pose(state, kind)
    step = change[..., :d] if R is None else torch.einsum("...ij,...j->...i", R, change[..., :d])
    if not turns:
        return p + step
    if d == 2:
        return torch.cat([p + step, state[..., 2:3] + change[..., 2:3]], -1)
    return torch.cat([p + step, matrix_to_rotvec(R @ rotvec_to_matrix(change[..., 3:6]))], -1)
