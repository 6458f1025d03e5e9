"""Embodiments: per-robot action/state/camera specs, normalization, frame alignment, calibration."""

from .alignment import (
    FrameAlignment,
    actions_to_frame_rate,
    chunk_actions,
    chunk_frame_windows,
    decode_indices,
    resample,
    resample_rotations,
    resample_vector,
    unchunk_actions,
)
from .calibration import CameraCalibration
from .concat_view import ConcatLayout
from .normalization import Normalizer, compute_stats, normalizers_from_stats
from .padding import MAX_ACTION_DIM, pad_action, unpad_action
from .representation import (
    canonical_to_cartesian,
    cartesian_to_canonical,
    convert_gripper,
    deltas_to_poses,
    matrix_to_rot6d,
    pose_to_matrix,
    poses_to_deltas,
    rot6d_to_matrix,
)
from .spaces import action_space_for, observation_space_for
from .spec import (CameraSpec, EmbodimentSpec, FieldSpec, SpecError, VectorSpec, camera_name, is_camera_key,
                   list_embodiments, load_spec)
from .validation import ActionError, validate_action

__all__ = [
    "camera_name",
    "is_camera_key",
    "ActionError",
    "CameraCalibration",
    "CameraSpec",
    "ConcatLayout",
    "EmbodimentSpec",
    "FieldSpec",
    "FrameAlignment",
    "MAX_ACTION_DIM",
    "Normalizer",
    "SpecError",
    "VectorSpec",
    "action_space_for",
    "actions_to_frame_rate",
    "canonical_to_cartesian",
    "cartesian_to_canonical",
    "chunk_actions",
    "chunk_frame_windows",
    "compute_stats",
    "convert_gripper",
    "decode_indices",
    "deltas_to_poses",
    "list_embodiments",
    "load_spec",
    "matrix_to_rot6d",
    "normalizers_from_stats",
    "observation_space_for",
    "pad_action",
    "pose_to_matrix",
    "poses_to_deltas",
    "resample",
    "resample_rotations",
    "resample_vector",
    "rot6d_to_matrix",
    "unchunk_actions",
    "unpad_action",
    "validate_action",
]
