"""A LeRobot v3 dataset with observation features derived from its frames (`embodiments.perception`'s
`register_observation_feature`, e.g. gym-pusht's keypoints as `observation.environment_state`), written by
lerobot's own `LeRobotDataset`, so `lerobot-train` trains state-based policies (as on lerobot/pusht_keypoints) on
data recorded here."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..embodiments import load_spec
from ..embodiments.perception import derived_feature_keys, observation_feature
from ..errors import UserError
from .lerobot_io import dataset_embodiment, load_episodes, open_dataset

DEFAULT_KEYS = ("index", "timestamp", "frame_index", "episode_index", "task_index")


def derive_features(sources: list[str | Path], out: str | Path, keys: list[str], *,
                    successful_only: bool = False, repo_id: str = "local/cosmos3", progress: bool = True) -> dict:
    """Write the episodes of `sources` (LeRobot datasets of one embodiment) to a new dataset at `out` with the
    derived features `keys` added to every frame and the camera features dropped (vectors only);
    `successful_only` keeps the episodes that reached success. Written beside `out` and moved in place at the end,
    so an interrupted run leaves no partial dataset. -> {"episodes", "frames"}."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm import tqdm

    out = Path(out)
    if out.exists():
        raise UserError(f"{str(out)!r} exists: give a new directory for the derived dataset")
    if not sources:
        raise UserError("give at least one source dataset")
    names = {dataset_embodiment(s) for s in sources}
    if len(names) != 1:
        raise UserError(f"the source datasets are of different embodiments {sorted(names)}; derive one at a time")
    spec = load_spec(names.pop())
    fns = {}
    for key in keys:
        fns[key] = observation_feature(spec.name, key)
        if fns[key] is None:
            raise UserError(f"no derived feature {key!r} is registered for {spec.name!r} (registered: "
                            f"{derived_feature_keys(spec.name) or 'none'})")
    first = open_dataset(sources[0], repo_id)
    cameras = [k for k, v in first.meta.features.items() if v["dtype"] in ("video", "image")]
    features = {k: dict(v) for k, v in first.meta.features.items() if k not in DEFAULT_KEYS and k not in cameras}
    for v in features.values():
        v["shape"] = tuple(v["shape"])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"episodes": 0, "frames": 0}
    ds = None
    for source in sources:
        episodes = load_episodes(source, repo_id)
        for ep in tqdm(episodes, desc=f"deriving {Path(source).name}", disable=not progress):
            if successful_only and not ep["success"].any():
                continue
            frames = ep["frames"][cameras[0]]
            derived = {k: np.stack([fn({cam: ep["frames"][cam][t] for cam in cameras}
                                       | {"observation.state": ep["state"][t]}) for t in range(len(frames))])
                       for k, fn in fns.items()}
            if ds is None:
                for k, v in derived.items():
                    features[k] = {"dtype": "float32", "shape": (v.shape[1],), "names": None}
                ds = LeRobotDataset.create(repo_id, fps=int(first.meta.fps), features=features, root=tmp,
                                           robot_type=first.meta.robot_type, use_videos=False)
            for t in range(len(frames)):
                row = {"observation.state": ep["state"][t], "action": ep["action"][t],
                       "next.reward": np.array([ep["reward"][t]], np.float32),
                       "next.success": np.array([ep["success"][t]]),
                       "next.done": np.array([t == len(frames) - 1]), "task": ep["task"]}
                row = {k: v for k, v in row.items() if k == "task" or k in features}
                row |= {k: v[t].astype(np.float32) for k, v in derived.items()}
                ds.add_frame(row)
            ds.save_episode()
            counts["episodes"] += 1
            counts["frames"] += len(frames)
    if ds is None:
        raise UserError("no episode to write (with successful_only, none of the sources' episodes succeeded)")
    ds.finalize()
    tmp.rename(out)
    return counts
