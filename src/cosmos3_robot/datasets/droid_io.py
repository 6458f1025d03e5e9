"""DROID's raw layout, as DROID's own code writes and reads it (droid-dataset/droid):

    <root>/<lab>/<success|failure>/<YYYY-MM-DD>/<Day_Mon_DD_HH:MM:SS_YYYY>/
        trajectory.h5                 the per-step tree of trajectory_utils/trajectory_writer.py
        recordings/MP4/<serial>.mp4   one video per ZED camera, named by serial
        metadata_<uuid>.json          the fields of postprocessing/schema.py TRAJECTORY_SCHEMA

trajectory.h5 holds what `postprocessing/parse.py` (`parse_trajectory`) and the RLDS builder
(droid_dataset_builder: `load_trajectory` -> observation robot_state / camera_type / timestamp /
controller_info, the six-entry `action_dict`) read:
- observation/robot_state/<state field> (1-D fields such as gripper_position stored (T,), as DROID does);
- observation/camera_type/<serial> (T,): 0 for the wrist (hand) camera, 1 for exterior ("varied") ones
  (camera_utils/info.py); observation/camera_extrinsics/<serial>_left (T, 6): xyz + euler "xyz";
- observation/timestamp/{robot_state, cameras, control}/... in ms, on the simulator's clock;
- observation/controller_info/{controller_on, failure, movement_enabled, success} (T,) bool;
- action/<field> of the recorded action variant; for a DROID-state robot (joint_positions,
  cartesian_position, gripper_position) the rest of DROID's action dict too: joint_position,
  cartesian_position and gripper_position targets taken as the state reached at the next step, and the
  velocities as DROID's RobotIKSolver normalizes them (robot_ik/robot_ik_solver.py: max_joint_delta 0.2 rad,
  max_lin_delta 0.075 m, max_rot_delta 0.15 rad, max_gripper_delta 0.25 per step), listed in the metadata's
  `cosmos3_derived_actions`;
- h5 attrs: current_task, success, failure, user, robot_serial_number, version_number, time.
DROID assigns ext1/ext2 by sorting the exterior serials (parse.py); the pseudo serials here rise in the
order wrist, exterior_1, exterior_2, so DROID's rule gives back the spec's cameras.

Our extra data stays in extra keys: observation/cosmos3/{reward, success} and, in the metadata, the
embodiment, action variant, camera serials by name and calibrations. The reader needs none of them: a real
DROID episode reads as the `droid` spec, cameras by wrist/ext1/ext2 serial, its `joint_position` action.

Videos are lossless H.264 RGB (libx264rgb, crf 0), so a round trip returns the exact frames. An episode is
written to a hidden temporary folder and renamed into place when complete: a killed collection leaves
every finished episode readable and no half episode."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from ..embodiments import CameraCalibration, EmbodimentSpec, load_spec
from ..embodiments.state_completion import complete_state
from .lerobot_io import LeRobotRecorder, fsync_tree
from .video import read_mp4, resize_to, write_mp4
from ..errors import UserError

LAB = "cosmos3"
ROLES = {"wrist_left": "wrist", "exterior_1_left": "ext1", "exterior_2_left": "ext2"}  # droid spec cameras
CAMERA_TYPE = {"wrist": 0, "exterior": 1}  # droid/camera_utils/info.py: hand_camera 0, varied_camera 1
DROID_STATE = ("joint_positions", "cartesian_position", "gripper_position")
MAX_DELTA = {"joint": 0.2, "lin": 0.075, "rot": 0.15, "gripper": 0.25}  # robot_ik_solver.py, per control step
BUILDING = "cosmos3-sim"  # DROID's GUI asks the building; ours is the simulator
# Each <serial>.mp4 holds the left and right eye side by side: what DROID's MP4 readers split (mp4_reader.py
# and the RLDS builder's droid_utils.py `read_camera`, frame[:, :w//2] -> <serial>_left, the rest -> _right).
VIDEO_LAYOUT = "stereo_side_by_side"
DIR_TIME = "%a_%b_%d_%H:%M:%S_%Y"  # one of parse.py's parse_timestamp patterns
UUID_TIME = "%Y-%m-%d-%Hh-%Mm-%Ss"  # parse.py's normalized timestamp, the tail of DROID's uuid


def camera_serials(spec: EmbodimentSpec) -> dict[str, str]:
    """camera name -> an 8-digit pseudo serial (DROID names videos by ZED serial), rising in the order wrist,
    exterior_1, exterior_2, then the other cameras, so DROID's sorted-serial rule assigns ext1/ext2 right."""
    rank = {"wrist": 0, "ext1": 1, "ext2": 2}
    order = sorted(spec.cameras, key=lambda c: (rank.get(ROLES.get(c.name, ""), 3), spec.cameras.index(c)))
    return {c.name: f"{i + 1}{int(hashlib.sha1(c.name.encode()).hexdigest(), 16) % 10**7:07d}"
            for i, c in enumerate(order)}


def _droid_actions(state: dict[str, np.ndarray], recorded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """DROID's action dict for a robot with DROID's state fields: targets = the state reached next step (the last
    step holds), velocities normalized as RobotIKSolver does; fields the policy commanded are kept as recorded."""
    nxt = {k: np.concatenate([v[1:], v[-1:]]) for k, v in state.items()}
    q, g = state["joint_positions"], state["gripper_position"].reshape(-1)
    pose, pose_next = state["cartesian_position"], nxt["cartesian_position"]
    rot = (Rotation.from_euler("xyz", pose_next[:, 3:]) * Rotation.from_euler("xyz", pose[:, 3:]).inv()).as_rotvec()
    out = {
        "joint_position": nxt["joint_positions"],
        "joint_velocity": np.clip((nxt["joint_positions"] - q) / MAX_DELTA["joint"], -1, 1),
        "cartesian_position": pose_next,
        "cartesian_velocity": np.concatenate([np.clip((pose_next[:, :3] - pose[:, :3]) / MAX_DELTA["lin"], -1, 1),
                                              np.clip(rot / MAX_DELTA["rot"], -1, 1)], axis=1),
        "gripper_position": nxt["gripper_position"].reshape(-1),
        "gripper_velocity": np.clip((nxt["gripper_position"].reshape(-1) - g) / MAX_DELTA["gripper"], -1, 1),
    }
    return {k: v for k, v in out.items() if k not in recorded}


def _flat(x: np.ndarray) -> np.ndarray:
    """DROID stores 1-wide fields per step as scalars: (T, 1) -> (T,)."""
    return x[:, 0] if x.ndim == 2 and x.shape[1] == 1 else x


class DroidWriter:
    """Write episodes in DROID's raw layout under `root`. `calibrations`: fixed cameras' calibrations;
    `live_calibrations`: a callable returning every camera's calibration now (e.g. a MuJoCo scene's
    `env.calibrations`, whose wrist camera moves); the spec's own calibrations fill in. `stereo`: a callable
    returning camera name -> (right-eye frame, right-eye calibration) now (a scene's `env.stereo`);
    without it the right half of each video is a copy of the left (said in the metadata's `cosmos3_right_eye`).
    `robot_state_extras`: a callable returning DROID's further robot_state fields now (joint velocities, torques).
    The callables are read by `observe()`, which `eval.rollout.collect` calls right after each observation; a
    frame added without it reads them at `add_frame`."""

    def __init__(self, root: str | Path, spec: EmbodimentSpec | str, calibrations: dict | None = None,
                 variant: str | None = None, live_calibrations=None, stereo=None, robot_state_extras=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):  # a previous run killed mid-episode
            shutil.rmtree(stale, ignore_errors=True)
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.action = self.spec.action_variant(variant)
        self.calibrations: dict[str, CameraCalibration] = dict(calibrations or {})
        for c in self.spec.cameras:
            if c.name not in self.calibrations and c.calibration:
                self.calibrations[c.name] = CameraCalibration.from_dict({**c.calibration, "name": c.name})
        self.live_calibrations, self.stereo, self.robot_state_extras = live_calibrations, stereo, robot_state_extras
        self._buffer: list[tuple[dict, np.ndarray, float, bool, dict]] = []
        self._pending: dict | None = None
        self._task = ""

    def existing_episodes(self) -> list[dict]:
        return [read_droid_metadata(p) for p in list_droid_episodes(self.root)]

    def _capture(self) -> dict:
        return {"calib": self.live_calibrations() if self.live_calibrations is not None else {},
                "right": self.stereo() if self.stereo is not None else {},
                "extras": self.robot_state_extras() if self.robot_state_extras is not None else {}}

    def observe(self) -> None:
        """Read calibrations, right-eye views and robot-state extras for the observation just made."""
        self._pending = self._capture()

    def add_frame(self, observation: dict, action, reward: float, success: bool, task: str, done: bool = False) -> None:
        snap = self._pending if self._pending is not None else self._capture()
        self._pending = None
        self._buffer.append((observation, np.asarray(action, dtype=np.float32), float(reward), bool(success), snap))
        self._task = task

    def discard_episode(self) -> None:
        self._buffer, self._pending = [], None

    def _extrinsics(self, name: str) -> np.ndarray | None:
        per_step = [b[4]["calib"].get(name, self.calibrations.get(name)) for b in self._buffer]
        return None if any(c is None for c in per_step) else np.stack([c.to_droid() for c in per_step])

    def _right_eye(self, name: str, left: np.ndarray, left_ext: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray | None, str]:
        """(right frames, right extrinsics or None, "rendered" | "copy of left")."""
        views = [b[4]["right"].get(name) for b in self._buffer]
        if all(v is not None and v[0].shape == left.shape[1:] for v in views):
            return np.stack([v[0] for v in views]), np.stack([v[1].to_droid() for v in views]), "rendered"
        return left, left_ext, "copy of left"

    def _when(self, success: bool) -> tuple[datetime, Path]:
        """A start time whose DROID folder name is free (DROID's names have one-second resolution)."""
        when = datetime.fromtimestamp(int(time.time()))
        while any((self.root / LAB / o / when.strftime("%Y-%m-%d") / when.strftime(DIR_TIME)).exists()
                  for o in ("success", "failure")):
            when = datetime.fromtimestamp(when.timestamp() + 1)
        outcome = "success" if success else "failure"
        return when, self.root / LAB / outcome / when.strftime("%Y-%m-%d") / when.strftime(DIR_TIME)

    def _targets(self, state: dict, recorded: dict) -> dict[str, np.ndarray]:
        """DROID's action/target_cartesian_position and target_gripper_position (the controller's targets,
        droid/controllers/oculus_controller.py): the commanded pose, or the pose the commanded joints give (the
        spec's registered state completion), and the commanded gripper."""
        out = {}
        if "gripper_position" in recorded:
            out["target_gripper_position"] = _flat(recorded["gripper_position"])
        if "cartesian_position" in recorded:
            out["target_cartesian_position"] = recorded["cartesian_position"]
        elif "joint_position" in recorded and "gripper_position" in recorded and "cartesian_position" in state:
            pose = self.spec.state.slices()["cartesian_position"]
            try:
                out["target_cartesian_position"] = np.stack([
                    complete_state(self.spec, {"joint_positions": q, "gripper_position": g})[pose]
                    for q, g in zip(recorded["joint_position"], _flat(recorded["gripper_position"]))])
            except UserError:  # no kinematic chain registered for this robot
                pass
        return out

    def save_episode(self, **meta) -> int:
        if not self._buffer:
            raise UserError("save_episode() with no frames added; call add_frame() first")
        index = len(list_droid_episodes(self.root))
        success = bool(meta.get("success", False))
        imagined = bool(meta.get("imagined", False))
        when, final = self._when(success)
        user_id = hashlib.sha1(f"{LAB}{self.spec.name}".encode()).hexdigest()[:8]
        scene_id = int(user_id, 16) % 10**9  # one scene per embodiment
        ep_uuid = f"{LAB}+{user_id}+{when.strftime(UUID_TIME)}"
        tmp = self.root / f".tmp-{ep_uuid}"
        (tmp / "recordings" / "MP4").mkdir(parents=True)
        T = len(self._buffer)
        obs = [b[0] for b in self._buffer]
        actions = np.stack([b[1] for b in self._buffer])
        serials = {n: s for n, s in camera_serials(self.spec).items() if self.spec.camera(n).key in obs[0]}
        hz = self.spec.control_hz
        clock = (when.timestamp() + np.arange(T) / hz) * 1000  # the simulator's clock, ms
        ms = clock.astype(np.int64)
        state = {}
        derived: list[str] = []
        right_eye: dict[str, str] = {}
        videos: dict[str, np.ndarray] = {}
        ext0: dict[str, np.ndarray | None] = {}  # per camera, its extrinsics at every step
        with h5py.File(tmp / "trajectory.h5", "w") as h5:
            if self.spec.state.dims:
                full = np.stack([o["observation.state"] for o in obs]).astype(np.float64)
                state = {f: full[:, sl] for f, sl in self.spec.state.slices().items()}
                for f, x in state.items():
                    h5[f"observation/robot_state/{f}"] = _flat(x)
            extras = [b[4]["extras"] for b in self._buffer]
            for f in sorted(set.intersection(*(set(e) for e in extras))) if extras[0] else []:
                h5[f"observation/robot_state/{f}"] = np.stack([np.asarray(e[f], np.float64) for e in extras])
            recorded = {f: actions[:, sl].astype(np.float64) for f, sl in self.action.slices().items()}
            for f, x in recorded.items():
                h5[f"action/{f}"] = _flat(x)
            if all(f in state for f in DROID_STATE):
                for f, x in {**_droid_actions(state, recorded), **self._targets(state, recorded)}.items():
                    h5[f"action/{f}"] = x
                    derived.append(f)
            h5["observation/timestamp/robot_state/robot_timestamp_seconds"] = (clock // 1000).astype(np.int64)
            h5["observation/timestamp/robot_state/robot_timestamp_nanos"] = ((clock % 1000) * 1e6).astype(np.int64)
            for k in ("read_start", "read_end"):
                h5[f"observation/timestamp/robot_state/{k}"] = ms
            for k in ("step_start", "policy_start", "sleep_start", "control_start", "step_end"):
                h5[f"observation/timestamp/control/{k}"] = ms
            h5["observation/timestamp/skip_action"] = np.zeros(T, bool)  # trajectory_utils/misc.py: never skipped
            for info in ("controller_on", "movement_enabled"):
                h5[f"observation/controller_info/{info}"] = np.ones(T, bool)
            h5["observation/controller_info/failure"] = np.zeros(T, bool)
            h5["observation/controller_info/success"] = np.arange(T) == T - 1 if success else np.zeros(T, bool)
            h5["observation/cosmos3/reward"] = np.array([b[2] for b in self._buffer])
            h5["observation/cosmos3/success"] = np.array([b[3] for b in self._buffer])
            for name, serial in serials.items():
                wrist = self.spec.camera(name).viewpoint == "wrist"
                h5[f"observation/camera_type/{serial}"] = np.full(T, CAMERA_TYPE["wrist" if wrist else "exterior"])
                for k in ("estimated_capture", "frame_received", "read_start", "read_end"):
                    h5[f"observation/timestamp/cameras/{serial}_{k}"] = ms
                left = np.stack([o[self.spec.camera(name).key] for o in obs])
                ext = ext0[name] = self._extrinsics(name)
                right, ext_right, right_eye[name] = self._right_eye(name, left, ext)
                videos[serial] = np.concatenate([left, right], axis=2)  # side by side, as DROID's readers split it
                if ext is not None:
                    h5[f"observation/camera_extrinsics/{serial}_left"] = ext
                    h5[f"observation/camera_extrinsics/{serial}_right"] = ext_right
                    if wrist and "cartesian_position" in state:  # droid/robot_env.py: the camera in the hand's frame
                        h5[f"observation/camera_extrinsics/{serial}_left_gripper_offset"] = _in_frame(
                            state["cartesian_position"], ext)
            h5.attrs.update({"current_task": self._task, "success": success, "failure": not success,
                             "user": LAB, "robot_serial_number": f"sim-{self.spec.name}", "version_number": "1.3",
                             "time": when.strftime(DIR_TIME), "building": BUILDING,
                             "scene_id": scene_id, "fixed_tasks": [self._task],
                             "cosmos3_imagined": imagined, "cosmos3_checkpoint": str(meta.get("checkpoint") or "")})
        for serial, frames in videos.items():
            mp4 = tmp / "recordings" / "MP4" / f"{serial}.mp4"
            write_mp4(mp4, frames, self.spec.video_fps)
            # droid/camera_utils/recording_readers/mp4_reader.py: the frame times, matched against the h5's
            (mp4.parent / f"{serial}_timestamps.json").write_text(json.dumps(ms.tolist()))
        roles = {ROLES[n]: s for n, s in serials.items() if n in ROLES}
        lab_dir = final.relative_to(self.root / LAB)  # DROID's paths are relative to the <lab> folder (schema.py)
        mp4_rel = lab_dir / "recordings" / "MP4"
        paths = {f"{r}_mp4_path": str(mp4_rel / f"{s}.mp4") for r, s in roles.items()}
        paths |= {f"{r}_svo_path": "" for r in roles}  # no ZED SVO recordings exist for simulated cameras
        if "ext1" in roles and "ext2" in roles:  # svo2mp4.py: the exterior further toward +y is on the left
            e1, e2 = ext0.get("exterior_1_left"), ext0.get("exterior_2_left")
            left_role = "ext1" if e1 is None or e2 is None or e1[0][1] > e2[0][1] else "ext2"
            right_role = "ext2" if left_role == "ext1" else "ext1"
            paths |= {"left_mp4_path": paths[f"{left_role}_mp4_path"], "right_mp4_path": paths[f"{right_role}_mp4_path"]}
        metadata = {  # postprocessing/schema.py TRAJECTORY_SCHEMA, then ours
            "uuid": ep_uuid, "lab": LAB, "user": LAB, "user_id": user_id, "date": when.strftime("%Y-%m-%d"),
            "timestamp": when.strftime(UUID_TIME), "hdf5_path": str(lab_dir / "trajectory.h5"),
            "building": BUILDING, "scene_id": scene_id, "success": success,
            "robot_serial": f"sim-{self.spec.name}", "droid_version": "1.3", "current_task": self._task,
            "trajectory_length": T,
            **{f"{r}_cam_serial": s for r, s in roles.items()},
            **{f"{r}_cam_extrinsics": ext0[n][0].tolist() for n, r in ROLES.items()
               if n in serials and ext0[n] is not None},
            **paths,
            "embodiment": self.spec.name, "action_variant": self.action.name, "camera_serials": serials,
            "calibrations": {n: c.to_dict() for n, c in self.calibrations.items()},
            "cosmos3_derived_actions": derived, "cosmos3_video_layout": VIDEO_LAYOUT, "cosmos3_right_eye": right_eye,
            "imagined": imagined, "episode_index": index,
            **{k: v for k, v in meta.items() if v is not None},  # validate.py: no field may be null
        }
        (tmp / f"metadata_{ep_uuid}.json").write_text(json.dumps(metadata, indent=2))
        fsync_tree(tmp)  # on disk before it becomes visible
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(final)  # atomic: the episode appears complete or not at all
        self._buffer, self._pending = [], None
        return index

    def close(self) -> None:
        self.discard_episode()


def _in_frame(frame_pose: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """DROID 6-vectors (xyz + euler "xyz"): `pose` expressed in `frame_pose`'s frame, per step."""
    Rf, Rp = Rotation.from_euler("xyz", frame_pose[:, 3:]), Rotation.from_euler("xyz", pose[:, 3:])
    pos = Rf.inv().apply(pose[:, :3] - frame_pose[:, :3])
    return np.concatenate([pos, (Rf.inv() * Rp).as_euler("xyz")], axis=1)


def _episode_order(path: Path) -> tuple:
    meta = read_droid_metadata(path)
    return (meta.get("episode_index", 1 << 30), meta.get("timestamp", ""), str(path))


def list_droid_episodes(root: str | Path) -> list[Path]:
    """Complete episode folders under `root` at any depth (DROID nests them as
    <lab>/<success|failure>/<date>/<time>/), in recording order; `root` may be one episode."""
    root = Path(root)
    if (root / "trajectory.h5").is_file():
        return [root]
    if not root.is_dir():
        return []
    found = [p.parent for p in root.rglob("trajectory.h5")
             if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=_episode_order)


def read_droid_metadata(episode: str | Path) -> dict:
    """The episode's metadata_<uuid>.json; for a folder without one, the same fields read as DROID's parse.py
    reads them from trajectory.h5 (attrs, camera types, serials)."""
    episode = Path(episode)
    files = sorted(episode.glob("metadata_*.json"))
    if files:
        return json.loads(files[0].read_text())
    if not (episode / "trajectory.h5").is_file():
        raise FileNotFoundError(f"{str(episode)!r} has no trajectory.h5 or metadata_*.json; not a DROID episode")
    with h5py.File(episode / "trajectory.h5", "r") as h5:
        attrs = dict(h5.attrs)
        types = {s: int(np.asarray(t)[0]) for s, t in h5["observation/camera_type"].items()}
        T = int(h5["action/joint_position"].shape[0]) if "action/joint_position" in h5 else None
    meta = {"uuid": episode.name, "current_task": str(attrs.get("current_task", "")),
            "success": bool(attrs.get("success", False)), "trajectory_length": T}
    exts = ["ext1", "ext2"]
    for serial in sorted(types):  # parse.py: wrist if type 0, else ext1, ext2 by sorted serial
        meta[f"{'wrist' if types[serial] == 0 else exts.pop(0)}_cam_serial"] = serial
    return meta


def _serials_by_camera(meta: dict, spec: EmbodimentSpec) -> dict[str, str]:
    if "camera_serials" in meta:
        return dict(meta["camera_serials"])
    return {name: meta[f"{role}_cam_serial"] for name, role in ROLES.items()
            if f"{role}_cam_serial" in meta and name in {c.name for c in spec.cameras}}


def _column(arrays: dict, key: str) -> np.ndarray:
    x = np.asarray(arrays[key])
    return x[:, None] if x.ndim == 1 else x


def read_droid_episode(episode: str | Path) -> dict:
    """One DROID-layout episode: metadata, h5 arrays (flat dict by path), frames per camera name, the
    spec-ordered `state` and `action` vectors (its recorded action variant, or for a DROID episode
    `joint_position`), camera calibrations when stored, and the reward / success per step."""
    episode = Path(episode)
    meta = read_droid_metadata(episode)
    arrays: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]

    with h5py.File(episode / "trajectory.h5", "r") as h5:
        h5.visititems(visit)
        attrs = dict(h5.attrs)
    spec = load_spec(meta.get("embodiment", "droid"))
    out = {"metadata": meta, "arrays": arrays, "frames": {}, "spec": spec.name}
    for name, serial in _serials_by_camera(meta, spec).items():
        path = episode / "recordings" / "MP4" / f"{serial}.mp4"
        if path.is_file():
            frames = read_mp4(path)
            if meta.get("cosmos3_video_layout") == VIDEO_LAYOUT:  # ours: left eye | right eye
                frames = frames[:, :, : frames.shape[2] // 2]
            out["frames"][name] = frames
    out["calibrations"] = {n: CameraCalibration.from_dict(d) for n, d in meta.get("calibrations", {}).items()}
    if spec.state.dims and all(f"observation/robot_state/{f.name}" in arrays for f in spec.state.fields):
        out["state"] = np.concatenate([_column(arrays, f"observation/robot_state/{f.name}") for f in spec.state.fields],
                                      axis=1)
    variant = meta.get("action_variant")
    if variant is None:  # a DROID episode: its native joint_position action where stored
        have = [n for n, v in spec.actions.items() if all(f"action/{f.name}" in arrays for f in v.fields)]
        variant = "joint_position" if "joint_position" in have else (have[0] if have else None)
    if variant is not None:
        vec = spec.action_variant(variant)
        out["action"] = np.concatenate([_column(arrays, f"action/{f.name}") for f in vec.fields], axis=1)
        out["action_variant"] = vec.name
    T = len(out["action"]) if "action" in out else int(meta.get("trajectory_length") or 0)
    if "observation/cosmos3/reward" in arrays:
        out["reward"], out["success"] = arrays["observation/cosmos3/reward"], arrays["observation/cosmos3/success"]
    else:  # DROID's RLDS convention: reward 1 at the last step of a successful episode
        last = (np.arange(T) == T - 1) & bool(attrs.get("success", meta.get("success", False)))
        out["reward"], out["success"] = last.astype(np.float64), last
    return out


def droid_to_lerobot(droid_root: str | Path, out: str | Path, repo_id: str = "local/cosmos3", progress: bool = True,
                     vcodec: str | None = None):
    """Convert a folder of DROID-layout episodes (ours or DROID's own) into a LeRobot v3 dataset, appending to
    `out`; frames are resized to the spec's camera size. Episodes already there, by DROID uuid, are skipped
    (`recorder.skipped` counts them)."""
    from tqdm.auto import tqdm

    episodes = list_droid_episodes(droid_root)
    if not episodes:
        raise FileNotFoundError(f"no DROID-layout episodes (trajectory.h5) under {str(droid_root)!r}")
    first = read_droid_episode(episodes[0])
    spec = load_spec(first["spec"])
    recorder = LeRobotRecorder(out, spec, repo_id=repo_id, cameras=list(first["frames"]),
                               variant=first.get("action_variant"), vcodec=vcodec)
    # a rerun (or a resume after a kill) skips the episodes already converted, matched on DROID's uuid
    done = {m.get("droid_uuid") for m in recorder.existing_episodes()}
    recorder.skipped = 0
    for path in tqdm(episodes, desc="droid -> lerobot", disable=not progress):
        if read_droid_metadata(path)["uuid"] in done:
            recorder.skipped += 1
            continue
        ep = read_droid_episode(path)
        frames = {n: resize_to(f, spec.camera(n).height, spec.camera(n).width) for n, f in ep["frames"].items()}
        T = min([len(ep["action"]), *(len(f) for f in frames.values())])
        task = ep["metadata"].get("current_task", "")
        for t in range(T):
            obs = {spec.camera(n).key: f[t] for n, f in frames.items()}
            if "state" in ep:
                obs["observation.state"] = ep["state"][t].astype(np.float32)
            recorder.add_frame(obs, ep["action"][t], float(ep["reward"][t]), bool(ep["success"][t]), task,
                               done=t == T - 1)
        keep = {k: ep["metadata"][k] for k in ("seed", "policy", "success", "length", "env") if k in ep["metadata"]}
        recorder.save_episode(**keep, droid_uuid=ep["metadata"]["uuid"])
    recorder.close()  # packs the per-episode files
    return recorder


# LeRobot's own DROID port (huggingface/lerobot examples/port_datasets/port_droid.py, DROID_FEATURES): its
# feature names, shapes and names and fps, for `droid_to_lerobot_port` (its robot_type is the droid spec's
# [lerobot] port_robot_type).
PORT_FPS = 15
_AXES6 = {"axes": ["x", "y", "z", "roll", "pitch", "yaw"]}
_JOINTS = {"axes": [f"joint_{i}" for i in range(7)]}
_GRIP = {"axes": ["gripper"]}
_PORT_CAMERAS = ("wrist_left", "exterior_1_left", "exterior_2_left")  # the droid spec's names, as the port's


def port_features() -> dict:
    f32 = lambda shape, names: {"dtype": "float32", "shape": shape, "names": names}  # noqa: E731
    flag = {"dtype": "bool", "shape": (1,), "names": None}
    text = {"dtype": "string", "shape": (1,), "names": None}
    feats = {"is_first": flag, "is_last": flag, "is_terminal": flag, "language_instruction": text,
             "language_instruction_2": text, "language_instruction_3": text,
             "observation.state.gripper_position": f32((1,), _GRIP),
             "observation.state.cartesian_position": f32((6,), _AXES6),
             "observation.state.joint_position": f32((7,), _JOINTS),
             "observation.state": f32((8,), {"axes": _JOINTS["axes"] + ["gripper"]})}
    for cam in _PORT_CAMERAS:
        feats[f"observation.images.{cam}"] = {"dtype": "video", "shape": (180, 320, 3),
                                              "names": ["height", "width", "channels"]}
    feats |= {"action.gripper_position": f32((1,), _GRIP), "action.gripper_velocity": f32((1,), _GRIP),
              "action.cartesian_position": f32((6,), _AXES6), "action.cartesian_velocity": f32((6,), _AXES6),
              "action.joint_position": f32((7,), _JOINTS), "action.joint_velocity": f32((7,), _JOINTS),
              "action.original": f32((7,), {"axes": _AXES6["axes"] + ["gripper"]}),
              "action": f32((8,), {"axes": _JOINTS["axes"] + ["gripper"]}),
              "discount": f32((1,), None), "reward": f32((1,), None), "task_category": text, "building": text,
              "collector_id": text, "date": text}
    feats |= {f"camera_extrinsics.{cam}": f32((6,), _AXES6) for cam in _PORT_CAMERAS}
    feats["is_episode_successful"] = flag
    return feats


def droid_to_lerobot_port(droid_root: str | Path, out: str | Path, repo_id: str = "local/droid",
                          progress: bool = True) -> int:
    """DROID-layout episodes (ours or DROID's own) -> a LeRobot dataset in the layout of LeRobot's DROID port
    (`port_droid.py`): 8-D state and action (7 joints + gripper), every DROID sub-feature, the port's robot_type.
    Frames are resized to 180x320 as the port's RLDS source was. Built in a sibling folder and renamed into
    place, so a kill leaves nothing half-written; `out` must not exist. -> episodes written."""
    import os

    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{str(out)!r} exists; the port layout is written whole into a new folder")
    episodes = list_droid_episodes(droid_root)
    if not episodes:
        raise FileNotFoundError(f"no DROID-layout episodes (trajectory.h5) under {str(droid_root)!r}")
    tmp = out.with_name(out.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    ds = LeRobotDataset.create(repo_id, fps=PORT_FPS, features=port_features(), root=tmp,
                               robot_type=load_spec("droid").lerobot_names["port_robot_type"], use_videos=True)
    for path in tqdm(episodes, desc="droid -> lerobot (port layout)", disable=not progress):
        ep = read_droid_episode(path)
        a, meta = ep["arrays"], ep["metadata"]
        missing = [n for n in _PORT_CAMERAS if n not in ep["frames"]]
        need = ["observation/robot_state/joint_positions", "observation/robot_state/cartesian_position",
                "observation/robot_state/gripper_position", *(f"action/{k}" for k in (
                    "joint_position", "joint_velocity", "cartesian_position", "cartesian_velocity",
                    "gripper_position", "gripper_velocity"))]
        if missing or any(k not in a for k in need):
            raise UserError(f"{path}: the port layout needs DROID's three cameras and state/action fields; missing "
                            f"{missing + [k for k in need if k not in a]}")
        frames = {n: resize_to(ep["frames"][n], 180, 320) for n in _PORT_CAMERAS}
        T = min([len(a["action/joint_position"]), *(len(f) for f in frames.values())])
        success = bool(meta.get("success", False))
        serials = _serials_by_camera(meta, load_spec(ep["spec"]))
        extr = {n: np.asarray(a[f"observation/camera_extrinsics/{serials[n]}_left"][0], np.float32)
                if n in serials and f"observation/camera_extrinsics/{serials[n]}_left" in a else np.zeros(6, np.float32)
                for n in _PORT_CAMERAS}
        task = str(meta.get("current_task", ""))
        col = lambda k, t: np.atleast_1d(np.asarray(a[k][t], np.float32))  # noqa: E731
        for t in range(T):
            q, g = col("observation/robot_state/joint_positions", t), col("observation/robot_state/gripper_position", t)
            qa, ga = col("action/joint_position", t), col("action/gripper_position", t)
            last = t == T - 1
            frame = {"is_first": np.array([t == 0]), "is_last": np.array([last]), "is_terminal": np.array([last]),
                     "language_instruction": task, "language_instruction_2": "", "language_instruction_3": "",
                     "observation.state.gripper_position": g,
                     "observation.state.cartesian_position": col("observation/robot_state/cartesian_position", t),
                     "observation.state.joint_position": q, "observation.state": np.concatenate([q, g]),
                     **{f"observation.images.{n}": frames[n][t] for n in _PORT_CAMERAS},
                     "action.gripper_position": ga, "action.gripper_velocity": col("action/gripper_velocity", t),
                     "action.cartesian_position": col("action/cartesian_position", t),
                     "action.cartesian_velocity": col("action/cartesian_velocity", t),
                     "action.joint_position": qa, "action.joint_velocity": col("action/joint_velocity", t),
                     # the RLDS builder's `action` (droid_dataset_builder droid.py): cartesian target + gripper
                     "action.original": np.concatenate([col("action/cartesian_position", t), ga]),
                     "action": np.concatenate([qa, ga]),
                     "discount": np.array([1.0], np.float32),
                     "reward": np.array([float(last and success)], np.float32),  # the builder's reward
                     "task_category": str(meta.get("building", "")), "building": str(meta.get("building", "")),
                     "collector_id": str(meta.get("user_id", "")), "date": str(meta.get("date", "")),
                     **{f"camera_extrinsics.{n}": extr[n] for n in _PORT_CAMERAS},
                     "is_episode_successful": np.array([success]), "task": task}
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    fsync_tree(tmp)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return len(episodes)
