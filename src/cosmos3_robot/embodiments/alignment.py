"""Frame alignment: control steps <-> video frames, action chunks, and resampling between rates.

Cosmos 3 convention: one action per video frame, T actions lead T+1 frames ("o0 --a0--> o1").
When the controller runs faster than the video (DROID 15 Hz actions vs 5 fps video, ALOHA 50 Hz vs
25 fps), `actions_to_frame_rate` folds the k control steps between two frames into one action:
absolute fields keep the last value, velocity fields the mean, delta fields compose (sum for
translations, rotation product for rot6d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import interp1d
from scipy.spatial.transform import Rotation, Slerp

from .representation import ROTATION_DIMS, from_rotation, to_rotation
from .spec import EmbodimentSpec, VectorSpec
from ..errors import UserError

_TOL = 1e-9


@dataclass(frozen=True)
class FrameAlignment:
    """Time bookkeeping between a control stream (`control_hz`) and a video stream (`video_fps`)."""

    control_hz: float
    video_fps: float

    @classmethod
    def from_spec(cls, spec: EmbodimentSpec) -> FrameAlignment:
        return cls(spec.control_hz, spec.video_fps)

    @property
    def steps_per_frame(self) -> float:
        return self.control_hz / self.video_fps

    def step_timestamps(self, n: int, start: float = 0.0) -> np.ndarray:
        return start + np.arange(n) / self.control_hz

    def frame_timestamps(self, n: int, start: float = 0.0) -> np.ndarray:
        return start + np.arange(n) / self.video_fps

    def frame_for_step(self, step):
        """Index of the latest video frame at or before control step `step`."""
        return np.floor(np.asarray(step) * self.video_fps / self.control_hz + _TOL).astype(int)

    def step_for_frame(self, frame):
        """Index of the control step issued at the time of video frame `frame` (nearest)."""
        return np.rint(np.asarray(frame) * self.control_hz / self.video_fps).astype(int)

    def num_frames(self, n_steps: int) -> int:
        """Frames covering `n_steps` actions: the first frame plus one per completed frame interval."""
        return int(self.frame_for_step(n_steps)) + 1


def decode_indices(n_source: int, source_fps: float, target_fps: float) -> np.ndarray:
    """Source frame indices to keep when decoding an `n_source`-frame video at `target_fps`
    (e.g. 30 fps decoded at 15 keeps every other frame); nearest frame in time, never past the end."""
    if target_fps > source_fps + _TOL:
        raise UserError(f"target_fps {target_fps} exceeds source_fps {source_fps}; decoding cannot add frames")
    duration = n_source / source_fps
    n_target = int(np.floor(duration * target_fps + _TOL))
    idx = np.rint(np.arange(n_target) * source_fps / target_fps).astype(int)
    return np.minimum(idx, n_source - 1)


def actions_to_frame_rate(actions: np.ndarray, vector: VectorSpec, steps_per_frame: int) -> np.ndarray:
    """(T*k, D) control-rate actions -> (T, D) frame-rate actions, field by field (see module doc).
    T*k must divide evenly; pad or trim the stream first."""
    actions = np.asarray(actions, dtype=np.float64)
    k = int(steps_per_frame)
    if actions.ndim != 2 or actions.shape[1] != vector.dims:
        raise UserError(f"actions shape {actions.shape}, expected (T, {vector.dims}) for {vector.name!r}")
    if k < 1 or len(actions) % k:
        raise UserError(f"{len(actions)} actions do not split into groups of steps_per_frame={k}")
    groups = actions.reshape(len(actions) // k, k, vector.dims)
    out = np.empty((len(groups), vector.dims))
    for f, sl in zip(vector.fields, vector.slices().values()):
        block = groups[:, :, sl]
        if f.representation == "absolute":
            out[:, sl] = block[:, -1]
        elif f.representation == "velocity":
            out[:, sl] = block.mean(axis=1)
        elif f.rotation is None:
            out[:, sl] = block.sum(axis=1)
        elif f.dims != ROTATION_DIMS[f.rotation]:
            raise UserError(f"delta field {f.name!r} mixes linear and {f.rotation} dims; split it into two fields")
        else:  # compose deltas in application order: R_total = dR_k ... dR_1
            rots = [to_rotation(block[:, j], f.rotation) for j in range(k)]
            total = rots[0]
            for r in rots[1:]:
                total = r * total
            out[:, sl] = from_rotation(total, f.rotation).reshape(len(groups), -1)
    return out


def chunk_actions(actions: np.ndarray, chunk_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) -> chunks (N, chunk_length, D) and a bool mask (N, chunk_length); the last chunk is
    zero-padded and its padding masked out. N = ceil(T / chunk_length)."""
    actions = np.asarray(actions)
    if chunk_length < 1:
        raise UserError(f"chunk_length = {chunk_length} must be >= 1")
    if actions.ndim != 2:
        raise UserError(f"actions must be (T, D), got shape {actions.shape}")
    n = -(-len(actions) // chunk_length)
    chunks = np.zeros((n, chunk_length, actions.shape[1]), dtype=actions.dtype)
    mask = np.zeros((n, chunk_length), dtype=bool)
    chunks.reshape(-1, actions.shape[1])[: len(actions)] = actions
    mask.reshape(-1)[: len(actions)] = True
    return chunks, mask


def unchunk_actions(chunks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse of `chunk_actions`: the valid (unmasked) actions in order."""
    chunks, mask = np.asarray(chunks), np.asarray(mask, dtype=bool)
    return chunks.reshape(-1, chunks.shape[-1])[mask.reshape(-1)]


def chunk_frame_windows(n_actions: int, chunk_length: int) -> list[tuple[int, int]]:
    """Frame index range [start, stop) of each chunk under T/T+1: chunk i holds actions
    i*L .. i*L+L-1 and spans frames i*L .. i*L+L (neighbouring chunks share a boundary frame)."""
    return [(s, min(s + chunk_length, n_actions) + 1) for s in range(0, n_actions, chunk_length)]


def resample(times: np.ndarray, values: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Linear interpolation of (N, D) values sampled at `times` onto `new_times` (inside the range)."""
    times, new_times = np.asarray(times, float), np.asarray(new_times, float)
    new_times = _check_times(times, new_times)
    return interp1d(times, np.asarray(values, float), axis=0, assume_sorted=True)(new_times)


def resample_rotations(times: np.ndarray, rotations: Rotation, new_times: np.ndarray) -> Rotation:
    """Spherical linear interpolation (scipy `Slerp`), never linear on angles."""
    times, new_times = np.asarray(times, float), np.asarray(new_times, float)
    new_times = _check_times(times, new_times)
    return Slerp(times, rotations)(new_times)


def resample_vector(vector: VectorSpec, times: np.ndarray, values: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Resample an absolute-valued stream (state, or absolute actions) field by field: rotation
    fields by Slerp in their own format, the rest linearly. Delta/velocity streams are rates per
    step and do not resample by interpolation: integrate them to absolute poses first."""
    values = np.asarray(values, float)
    out = np.empty((len(new_times), vector.dims))
    for f, sl in zip(vector.fields, vector.slices().values()):
        if f.representation != "absolute":
            raise UserError(
                f"field {f.name!r} is {f.representation}; resample the absolute trajectory "
                "(deltas_to_poses) and convert back (poses_to_deltas) instead"
            )
        # a rotation field may lead with linear dims (DROID cartesian_position: xyz + euler)
        n_lin = f.dims - (ROTATION_DIMS[f.rotation] if f.rotation else 0)
        lin, rot = slice(sl.start, sl.start + n_lin), slice(sl.start + n_lin, sl.stop)
        if n_lin:
            out[:, lin] = resample(times, values[:, lin], new_times)
        if f.rotation:
            rots = resample_rotations(times, to_rotation(values[:, rot], f.rotation), new_times)
            out[:, rot] = from_rotation(rots, f.rotation).reshape(len(new_times), -1)
    return out


def _check_times(times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Validate and return `new_times` clipped onto the sampled range (float round-off only)."""
    if times.ndim != 1 or len(times) < 2 or np.any(np.diff(times) <= 0):
        raise UserError("times must be a strictly increasing 1-D array with >= 2 samples")
    if new_times.size and (new_times.min() < times[0] - _TOL or new_times.max() > times[-1] + _TOL):
        raise UserError(
            f"new_times [{new_times.min():.4f}, {new_times.max():.4f}] leave the sampled range "
            f"[{times[0]:.4f}, {times[-1]:.4f}]; extrapolation is not supported"
        )
    return np.clip(new_times, times[0], times[-1])
