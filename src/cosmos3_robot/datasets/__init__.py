"""Datasets: LeRobot v3 recording/reading (through lerobot), DROID raw layout, training windows."""

from .droid_io import DroidWriter, droid_to_lerobot, list_droid_episodes, read_droid_episode, read_droid_metadata
from .lerobot_io import (
    LeRobotRecorder,
    compact_dataset,
    dataset_normalizers,
    episode_sources,
    file_counts,
    lerobot_features,
    load_episodes,
    open_dataset,
    read_episode_meta,
    recover_dataset,
)
from .windows import TrainingWindows, episode_to_frame_rate, lerobot_delta_timestamps

__all__ = [
    "TrainingWindows",
    "episode_to_frame_rate",
    "lerobot_delta_timestamps",
    "DroidWriter",
    "LeRobotRecorder",
    "compact_dataset",
    "dataset_normalizers",
    "episode_sources",
    "droid_to_lerobot",
    "file_counts",
    "lerobot_features",
    "list_droid_episodes",
    "load_episodes",
    "open_dataset",
    "read_droid_episode",
    "read_droid_metadata",
    "read_episode_meta",
    "recover_dataset",
]
