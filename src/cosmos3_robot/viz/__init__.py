"""Rerun logging: rollouts and dataset episodes with cameras, actions, paths and calibrated frustums."""

from .contact_sheet import contact_sheet, read_images
from .rerun_log import (
    RolloutLog,
    blueprint,
    end_effector_path,
    episode_log,
    log_rollout,
    open_recording,
    save_rollout,
    spec_calibrations,
)

__all__ = ["RolloutLog", "contact_sheet", "read_images", "blueprint", "end_effector_path", "episode_log", "log_rollout", "open_recording",
           "save_rollout", "spec_calibrations"]
