"""DROID raw layout: one folder per episode with `trajectory.h5`, `recordings/MP4/<serial>.mp4`
and `metadata_<lab>+<uuid>.json` (camera serials, extrinsics, task, success), as in the DROID
release. Observation arrays go to `observation/robot_state/<state field>`, actions to
`action/<action field>`; camera extrinsics (DROID 6-vector, xyz + euler "xyz") to
`observation/camera_extrinsics/<serial>_left`. Videos are lossless H.264 RGB (libx264rgb, crf 0),
so a round trip returns the exact frames.

An episode is written to a hidden temporary folder and renamed when complete: a killed collection
leaves every finished episode readable and no half episode.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import av
import h5py
import numpy as np

from ..embodiments import CameraCalibration, EmbodimentSpec, load_spec
from .lerobot_io import LeRobotRecorder, fsync_tree

av.logging.set_level(av.logging.ERROR)  # libx264 prints per-file statistics otherwise
LAB = "cosmos3"
DROID_ROLES = {"wrist_left": "wrist", "exterior_1_left": "ext1", "exterior_2_left": "ext2"}


def camera_serial(name: str) -> str:
    """A stable 8-digit pseudo serial per camera name (DROID names videos by ZED serial)."""
    return str(int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10**8).zfill(8)


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=int(round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_mp4(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


class DroidWriter:
    """Write episodes in the DROID raw layout under `root/<episode folder>/`."""

    def __init__(self, root: str | Path, spec: EmbodimentSpec | str, calibrations: dict | None = None,
                 variant: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):  # a previous run killed mid-episode
            shutil.rmtree(stale, ignore_errors=True)
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.action = self.spec.action_variant(variant)
        self.calibrations: dict[str, CameraCalibration] = calibrations or {}
        self._buffer: list[tuple[dict, np.ndarray, float, bool]] = []
        self._task = ""

    def existing_episodes(self) -> list[dict]:
        return [read_droid_metadata(p) for p in list_droid_episodes(self.root)]

    def add_frame(self, observation: dict, action, reward: float, success: bool, task: str) -> None:
        self._buffer.append((observation, np.asarray(action, dtype=np.float32), float(reward), bool(success)))
        self._task = task

    def discard_episode(self) -> None:
        self._buffer = []

    def save_episode(self, **meta) -> int:
        if not self._buffer:
            raise ValueError("save_episode() with no frames added; call add_frame() first")
        index = len(list_droid_episodes(self.root))
        ep_uuid = f"{LAB}+{uuid.uuid4()}"
        tmp = self.root / f".tmp-{ep_uuid}"
        (tmp / "recordings" / "MP4").mkdir(parents=True)
        T = len(self._buffer)
        obs = [b[0] for b in self._buffer]
        actions = np.stack([b[1] for b in self._buffer])
        serials = {c.name: camera_serial(c.name) for c in self.spec.cameras if c.key in obs[0]}
        with h5py.File(tmp / "trajectory.h5", "w") as h5:
            if self.spec.state.dims:
                state = np.stack([o["observation.state"] for o in obs]).astype(np.float64)
                for f, sl in self.spec.state.slices().items():
                    h5[f"observation/robot_state/{f}"] = state[:, sl]
            for f, sl in self.action.slices().items():
                h5[f"action/{f}"] = actions[:, sl].astype(np.float64)
            h5["observation/timestamp/control"] = np.arange(T) / self.spec.control_hz
            h5["observation/cosmos3/reward"] = np.array([b[2] for b in self._buffer])
            h5["observation/cosmos3/success"] = np.array([b[3] for b in self._buffer])
            for name, serial in serials.items():
                if name in self.calibrations:
                    h5[f"observation/camera_extrinsics/{serial}_left"] = np.tile(self.calibrations[name].to_droid(),
                                                                                 (T, 1))
        for name, serial in serials.items():
            frames = np.stack([o[f"observation.images.{name}"] for o in obs])
            write_mp4(tmp / "recordings" / "MP4" / f"{serial}.mp4", frames, self.spec.video_fps)
        metadata = {
            "uuid": ep_uuid, "lab": LAB, "embodiment": self.spec.name, "action_variant": self.action.name,
            "current_task": self._task, "trajectory_length": T, "success": bool(meta.get("success", False)),
            "hdf5_path": "trajectory.h5", "camera_serials": serials,
            "calibrations": {n: c.to_dict() for n, c in self.calibrations.items()},
            **{f"{DROID_ROLES[n]}_cam_serial": s for n, s in serials.items() if n in DROID_ROLES},
            **{f"{DROID_ROLES[n]}_cam_extrinsics": self.calibrations[n].to_droid().tolist()
               for n in serials if n in DROID_ROLES and n in self.calibrations},
            "episode_index": index, **meta,
        }
        (tmp / f"metadata_{ep_uuid}.json").write_text(json.dumps(metadata, indent=2))
        fsync_tree(tmp)  # on disk before it becomes visible
        tmp.rename(self.root / f"episode_{index:06d}")  # atomic: the episode appears complete or not at all
        self._buffer = []
        return index

    def close(self) -> None:
        self.discard_episode()


def list_droid_episodes(root: str | Path) -> list[Path]:
    """Complete episode folders (those with trajectory.h5 and a metadata file), sorted."""
    root = Path(root)
    if (root / "trajectory.h5").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "trajectory.h5").is_file() and any(p.glob("metadata_*.json")))


def read_droid_metadata(episode: str | Path) -> dict:
    files = sorted(Path(episode).glob("metadata_*.json"))
    if not files:
        raise FileNotFoundError(f"{str(episode)!r} has no metadata_*.json; not a DROID-layout episode")
    return json.loads(files[0].read_text())


def read_droid_episode(episode: str | Path) -> dict:
    """One DROID-layout episode: metadata, h5 arrays (nested dict), frames per camera name, the
    spec-ordered `state` and `action` vectors and camera calibrations when stored."""
    episode = Path(episode)
    meta = read_droid_metadata(episode)
    arrays: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]

    with h5py.File(episode / "trajectory.h5", "r") as h5:
        h5.visititems(visit)
    spec = load_spec(meta["embodiment"]) if "embodiment" in meta else None
    out = {"metadata": meta, "arrays": arrays, "frames": {}}
    for name, serial in meta.get("camera_serials", {}).items():
        out["frames"][name] = read_mp4(episode / "recordings" / "MP4" / f"{serial}.mp4")
    out["calibrations"] = {n: CameraCalibration.from_dict(d) for n, d in meta.get("calibrations", {}).items()}
    if spec is not None:
        if spec.state.dims:
            out["state"] = np.concatenate([arrays[f"observation/robot_state/{f.name}"] for f in spec.state.fields],
                                          axis=1)
        vec = spec.action_variant(meta.get("action_variant"))
        out["action"] = np.concatenate([arrays[f"action/{f.name}"] for f in vec.fields], axis=1)
    return out


def droid_to_lerobot(droid_root: str | Path, out: str | Path, repo_id: str = "local/cosmos3", progress: bool = True):
    """Convert a folder of DROID-layout episodes into a LeRobot v3 dataset (appending to `out`; episodes already
    there, by DROID uuid, are skipped: `recorder.skipped` counts them)."""
    from tqdm.auto import tqdm

    episodes = list_droid_episodes(droid_root)
    if not episodes:
        raise FileNotFoundError(f"no DROID-layout episodes under {str(droid_root)!r}")
    first = read_droid_metadata(episodes[0])
    spec = load_spec(first["embodiment"])
    recorder = LeRobotRecorder(out, spec, repo_id=repo_id, cameras=list(first["camera_serials"]),
                               variant=first.get("action_variant"))
    # a rerun (or a resume after a kill) skips the episodes already converted, matched on DROID's uuid
    done = {m.get("droid_uuid") for m in recorder.existing_episodes()}
    recorder.skipped = 0
    for path in tqdm(episodes, desc="droid -> lerobot", disable=not progress):
        if read_droid_metadata(path)["uuid"] in done:
            recorder.skipped += 1
            continue
        ep = read_droid_episode(path)
        reward, success = ep["arrays"]["observation/cosmos3/reward"], ep["arrays"]["observation/cosmos3/success"]
        for t in range(len(ep["action"])):
            obs = {f"observation.images.{n}": f[t] for n, f in ep["frames"].items()}
            if "state" in ep:
                obs["observation.state"] = ep["state"][t].astype(np.float32)
            recorder.add_frame(obs, ep["action"][t], float(reward[t]), bool(success[t]), ep["metadata"]["current_task"])
        keep = {k: ep["metadata"][k] for k in ("seed", "policy", "success", "length", "env") if k in ep["metadata"]}
        recorder.save_episode(**keep, droid_uuid=ep["metadata"]["uuid"])
    return recorder
