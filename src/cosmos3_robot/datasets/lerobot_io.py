"""Record episodes into LeRobot v3 datasets through lerobot's own `LeRobotDataset`, and read them.

Crash safety: lerobot keeps a parquet writer open until `finalize()`, and a killed process leaves
that file without its footer. The recorder therefore finalizes after every episode and resumes
(`LeRobotDataset.resume`) for the next, so a kill mid-episode loses only the unfinished episode.
That leaves one parquet and one MP4 per camera per episode; `close()` packs them into as few files as
v3's size limits allow (`compact_dataset`: lerobot's own `aggregate_datasets`, videos stream-copied, not
re-encoded), swapping the packed dataset in atomically.
Per-episode facts lerobot has no field for (seed, policy, success) go to `meta/cosmos3_episodes.jsonl`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..embodiments import EmbodimentSpec, Normalizer, load_spec, normalizers_from_stats
from ..embodiments.spec import flat_names
from ..errors import UserError

EPISODES_FILE = "meta/cosmos3_episodes.jsonl"


def lerobot_features(spec: EmbodimentSpec, cameras: list[str] | None = None, variant: str | None = None,
                     use_videos: bool = True) -> dict:
    """LeRobot feature dict (dtype/shape/names) for an embodiment's observations and actions, with the
    `next.reward` / `next.done` / `next.success` columns of LeRobot's sim datasets (their meta/info.json);
    feature names from the spec's [lerobot] table where it has one."""
    cams = [spec.camera(c) for c in cameras] if cameras else list(spec.cameras)
    action = spec.action_variant(variant)
    features = {
        c.key: {"dtype": "video" if use_videos else "image", "shape": (c.height, c.width, 3),
                "names": ["height", "width", "channel"]}
        for c in cams
    }
    if spec.state.dims:
        features["observation.state"] = {"dtype": "float32", "shape": (spec.state.dims,),
                                         "names": spec.lerobot_names.get("state", list(spec.state.dim_names))}
    names = spec.lerobot_names.get("action")
    flat = flat_names(names)
    features["action"] = {"dtype": "float32", "shape": (action.dims,),
                          "names": names if flat is not None and len(flat) == action.dims else list(action.dim_names)}
    features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    features["next.done"] = {"dtype": "bool", "shape": (1,), "names": None}
    features["next.success"] = {"dtype": "bool", "shape": (1,), "names": None}
    return features


VIDEO_QUALITIES = ("standard", "lossless")


DEFAULT_VCODEC = "libsvtav1"  # lerobot 0.6.1's default (VideoEncoderConfig), AV1 as LeRobot's hub datasets
LOSSLESS_VCODEC = "h264"  # SVT-AV1 encodes 4:2:0 only; libx264 does 4:4:4 at CRF 0


def _encoder(vcodec: str | None, quality: str = "standard"):
    """lerobot's RGB encoder config; `vcodec` None: lerobot's default codec (AV1), or H.264 for "lossless".
    "standard" is lerobot's default (yuv420p, CRF 30, GOP 2): small files,
    but at 96x96 its per-frame error (about 1.3 grey levels on average, up to ~100 on a small moving
    sprite) is larger than most frame-to-frame changes, so a world model trained on it learns the codec's
    flicker instead of the dynamics. "lossless" keeps full-resolution chroma at CRF 0 (lossless in YUV;
    RGB<->YUV rounding remains): the format for world-model training data."""
    from lerobot.configs import RGBEncoderConfig

    if quality not in VIDEO_QUALITIES:
        raise UserError(f"video quality {quality!r} is not one of {VIDEO_QUALITIES}")
    if quality == "lossless":
        return RGBEncoderConfig(vcodec=vcodec or LOSSLESS_VCODEC, pix_fmt="yuv444p", crf=0)
    return RGBEncoderConfig(vcodec=vcodec or DEFAULT_VCODEC)


JOURNAL = ".cosmos3_saving.json"  # present while an episode is being saved: what to roll back to
META_BACKUP = ".cosmos3_meta_backup"  # meta/ as it was before that save


def fsync_paths(paths) -> None:
    """Flush these files and directories to disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root` to disk."""
    fsync_paths([root, *root.rglob("*")])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


COMPACT_TMP, COMPACT_OLD = ".compacting", ".before-compacting"  # sibling folders during `compact_dataset`


def _siblings(root: Path) -> tuple[Path, Path]:
    return root.with_name(root.name + COMPACT_TMP), root.with_name(root.name + COMPACT_OLD)


def recover_dataset(root: str | Path) -> str | None:
    """Bring a dataset that a kill interrupted back to its last consistent state: an episode whose save did
    not finish is rolled back (meta/ restored from the backup taken before the save, the files the save
    added removed), as are frames buffered for an unsaved episode; a dataset with no finished episode is
    removed; a packing (`compact_dataset`) cut short is undone or completed. Returns what was done, or None
    if nothing was needed."""
    import shutil

    root = Path(root)
    done = None
    tmp, old = _siblings(root)
    if old.is_dir():
        if (root / "meta" / "info.json").is_file():
            shutil.rmtree(old)  # killed after the packed dataset was swapped in
        else:
            # killed between the two renames: `root` is gone, or is an empty folder a rerun made before this
            # recovery ran (the CLI creates --out first); the unpacked dataset comes back. Anything else in
            # `root` is not ours to delete.
            if root.is_dir():
                if any(root.iterdir()):
                    raise UserError(f"{str(root)!r} is not a dataset, and {str(old)!r} holds the dataset a packing "
                                     f"moved aside; move {str(root)!r} away and rerun to restore it")
                root.rmdir()
            os.replace(old, root)
            fsync_paths([root.parent])
            done = "undid a packing cut short"
    shutil.rmtree(tmp, ignore_errors=True)
    if not root.is_dir():
        return done
    journal, backup = root / JOURNAL, root / META_BACKUP
    if journal.is_file():
        before = set(json.loads(journal.read_text())["files"])
        if backup.is_dir():
            shutil.rmtree(root / "meta", ignore_errors=True)
            os.replace(backup, root / "meta")
        for rel in _files(root):
            if rel not in before and not rel.startswith(("meta/", JOURNAL)):
                (root / rel).unlink()
        journal.unlink()
        done = "rolled back an episode whose save was interrupted"
    elif backup.is_dir():  # killed while taking the backup: the save had not started
        shutil.rmtree(backup)
    shutil.rmtree(root / "images", ignore_errors=True)  # frames buffered for an episode that was never saved
    info = root / "meta" / "info.json"
    if info.is_file() and json.loads(info.read_text()).get("total_episodes", 0) == 0 and not read_episode_meta(root):
        shutil.rmtree(root)  # created, but no episode ever finished: start afresh
        done = done or "removed a dataset with no finished episode"
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True) if root.is_dir() else []:
        if not any(d.iterdir()):
            d.rmdir()  # directories a rolled-back save created
    return done


def _mark_source(root: Path, index: int, imagined: bool, by: str) -> None:
    """Write whether episode `index` was imagined, and by which checkpoint, into its row of lerobot's per-episode
    table (meta/episodes/*.parquet), where lerobot keeps per-episode facts: `aggregate_datasets` carries the
    columns into a merge, and `LeRobotDataset(...).meta.episodes` shows them."""
    import pandas as pd

    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        df = pd.read_parquet(path)
        if index not in set(df["episode_index"]):
            continue
        if "imagined" not in df:
            df["imagined"], df["imagined_by"] = False, ""
        row = df["episode_index"] == index
        df.loc[row, "imagined"], df.loc[row, "imagined_by"] = imagined, by
        df["imagined"] = df["imagined"].astype(bool)
        df.to_parquet(path.with_suffix(".tmp"), index=False)
        os.replace(path.with_suffix(".tmp"), path)
        return
    raise RuntimeError(f"episode {index} has no row in {root}/meta/episodes")


def episode_sources(root: str | Path) -> dict[int, str]:
    """episode index -> "real" or "imagined:<checkpoint>", read from lerobot's per-episode table, so it holds
    for a dataset merged by lerobot's `aggregate_datasets` too (rows without the columns, from datasets recorded
    elsewhere, read "unknown")."""
    import pandas as pd

    out = {}
    for path in sorted(Path(root, "meta", "episodes").glob("chunk-*/file-*.parquet")):
        df = pd.read_parquet(path)
        for _, r in df.iterrows():
            flag = r.get("imagined")
            out[int(r["episode_index"])] = ("unknown" if flag is None or pd.isna(flag)
                                            else f"imagined:{r.get('imagined_by') or ''}" if bool(flag) else "real")
    return out


def dataset_embodiment(root: str | Path, given: str | None = None) -> str:
    """Which embodiment recorded a LeRobot dataset: `given`, else our per-episode records' "embodiment", else
    lerobot's robot_type where it names a shipped spec; otherwise a UserError asking for one."""
    from ..embodiments import list_embodiments

    if given:
        return given
    root = Path(root)
    for record in read_episode_meta(root):
        if record.get("embodiment") or record.get("env"):  # (records before "embodiment" named the env)
            return record.get("embodiment") or record["env"]
    info = root / "meta" / "info.json"
    robot_type = json.loads(info.read_text()).get("robot_type") if info.is_file() else None
    if robot_type in list_embodiments():
        return robot_type
    raise UserError(f"{str(root)!r}: which embodiment recorded it? robot_type is {robot_type!r}; pass --embodiment "
                    f"(one of {list_embodiments()} or a .toml spec file)")


def read_episode_meta(root: str | Path) -> list[dict]:
    """The per-episode sidecar records (seed, policy, success, length, ...), in episode order."""
    path = Path(root) / EPISODES_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class _WriteFailures(logging.Handler):
    """The last error lerobot's image writer logged (it logs a failed PNG write and carries on)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()

    def take(self) -> str | None:
        last, self.last = self.last, None
        return last


_IMAGE_WRITE_FAILURES = _WriteFailures()
logging.getLogger("lerobot.datasets.image_writer").addHandler(_IMAGE_WRITE_FAILURES)


class LeRobotRecorder:
    """Append episodes to a LeRobot v3 dataset at `root` (created if new, resumed if it exists)."""

    def __init__(self, root: str | Path, spec: EmbodimentSpec | str, repo_id: str = "local/cosmos3",
                 cameras: list[str] | None = None, fps: float | None = None, vcodec: str | None = None,
                 robot_type: str | None = None, variant: str | None = None, quality: str = "standard"):
        self.root = Path(root)
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.repo_id, self.vcodec = repo_id, vcodec
        self.encoder = _encoder(vcodec, quality)  # validates `quality` before any frame is recorded
        self.fps = int(round(fps or self.spec.control_hz))
        self.features = lerobot_features(self.spec, cameras, variant)
        self.robot_type = robot_type or self.spec.robot_type or self.spec.name
        self._ds = None
        self._frames = 0

    @property
    def num_episodes(self) -> int:
        return len(read_episode_meta(self.root))

    def _open(self):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        if self._ds is not None:
            return self._ds
        recover_dataset(self.root)
        if (self.root / "meta" / "info.json").is_file():
            from lerobot.configs import encoder_config_from_video_info

            infos = [f.get("info") for f in json.loads((self.root / "meta" / "info.json").read_text())["features"].values()
                     if f.get("dtype") == "video" and f.get("info")]
            if infos:  # appending keeps the dataset's own encoding: one codec per dataset, as lerobot expects
                self.encoder = encoder_config_from_video_info(infos[0])
            self._ds = LeRobotDataset.resume(self.repo_id, root=self.root, rgb_encoder=self.encoder)
            existing = {k: tuple(v["shape"]) for k, v in self._ds.meta.features.items() if k in self.features}
            wanted = {k: tuple(v["shape"]) for k, v in self.features.items()}
            if existing != wanted:
                raise UserError(f"dataset at {str(self.root)!r} has features {existing}, this recorder writes"
                                 f" {wanted}; record into a new directory")
        else:
            if self.root.exists():
                if not self.root.is_dir() or any(self.root.iterdir()):
                    raise UserError(f"{str(self.root)!r} exists and is not a LeRobot dataset (no meta/info.json); "
                                     "record into a new or empty directory")
                self.root.rmdir()  # an empty directory: lerobot creates it itself
            self._ds = LeRobotDataset.create(self.repo_id, fps=self.fps, features=self.features, root=self.root,
                                             robot_type=self.robot_type, use_videos=True,
                                             rgb_encoder=self.encoder)
        return self._ds

    def add_frame(self, observation: dict, action, reward: float, success: bool, task: str, done: bool = False) -> None:
        """One step: the observation the action was chosen from, the action, and what followed it (`done`:
        the episode ends with this step)."""
        ds = self._open()
        frame = {k: observation[k] for k in self.features if k.startswith("observation.")}
        frame["action"] = np.asarray(action, dtype=np.float32)
        frame["next.reward"] = np.array([reward], dtype=np.float32)
        frame["next.done"] = np.array([bool(done)])
        frame["next.success"] = np.array([bool(success)])
        frame["task"] = task
        ds.add_frame(frame)
        self._frames += 1

    def save_episode(self, **meta) -> int:
        """Write the buffered episode, make it durable, and record `meta` (seed, policy, success...)."""
        if self._ds is None or self._frames == 0:
            raise UserError("save_episode() with no frames added; call add_frame() first")
        import shutil

        index = self._ds.meta.total_episodes
        # journal first: a kill anywhere below leaves what recover_dataset() needs to roll this episode back
        backup, tmp = self.root / META_BACKUP, self.root / (META_BACKUP + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.root / "meta", tmp)
        fsync_tree(tmp)
        os.replace(tmp, backup)
        files = [f for f in _files(self.root) if not f.startswith((META_BACKUP, "images/"))]
        journal = self.root / JOURNAL
        (self.root / (JOURNAL + ".tmp")).write_text(json.dumps({"episode_index": index, "files": files}))
        os.replace(self.root / (JOURNAL + ".tmp"), journal)
        try:
            self._ds.save_episode()
        except FileNotFoundError as e:  # a frame lerobot's image writer failed to write (it only logs why)
            failed = _IMAGE_WRITE_FAILURES.take()
            if failed and "[Errno 28]" in failed:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.root)) from e
            raise UserError(f"{str(self.root)!r}: a frame of episode {index} was not written ({failed or e}); rerun "
                            "the command once the cause is fixed (the episode is rolled back)") from e
        self._ds.finalize()
        self._ds, self._frames = None, 0
        _mark_source(self.root, index, bool(meta.get("imagined", False)), str(meta.get("checkpoint") or ""))
        record = {"episode_index": index, "embodiment": self.spec.name, **meta}
        with open(self.root / EPISODES_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        # what this save wrote (new files, meta/ rewritten in place) and every directory, not the older episodes
        written = [self.root / f for f in set(_files(self.root)) - set(files) if not f.startswith(META_BACKUP)]
        written += (self.root / "meta").rglob("*")
        fsync_paths([*written, *(p for p in self.root.rglob("*") if p.is_dir()), self.root])
        journal.unlink()  # the episode is complete: this is the commit point
        shutil.rmtree(backup)
        return index

    def existing_episodes(self) -> list[dict]:
        recover_dataset(self.root)
        return read_episode_meta(self.root)

    def discard_episode(self) -> None:
        if self._ds is not None and self._frames:
            self._ds.clear_episode_buffer()
        self._frames = 0

    def close(self, compact: bool = True) -> None:
        """Drop an unsaved episode and pack the dataset's files (`compact_dataset`)."""
        self.discard_episode()
        if self._ds is not None:
            self._ds.finalize()
            self._ds = None
        if compact and (self.root / "meta" / "info.json").is_file():
            compact_dataset(self.root, self.repo_id)


def file_counts(root: str | Path) -> dict[str, int]:
    """Parquet data files and MP4 files per camera key of a v3 dataset."""
    root = Path(root)
    counts = {"data": len(list((root / "data").rglob("*.parquet")))}
    for key_dir in sorted(p for p in (root / "videos").glob("*") if p.is_dir()):
        counts[key_dir.name] = len(list(key_dir.rglob("*.mp4")))
    return counts


def _locate_episode_rows(root: Path) -> None:
    """Make each episodes-metadata row name the file it is in. lerobot's `aggregate_datasets` (0.4.x) packs the
    rows of many episodes files into one but keeps each row's old `meta/episodes/file_index` (shifted by an
    offset); a later session resuming the dataset starts after the last row's index, and the next packing
    then looks for files that were never written."""
    import pandas as pd

    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        chunk, file = int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1])
        df = pd.read_parquet(path)
        if (df["meta/episodes/chunk_index"] == chunk).all() and (df["meta/episodes/file_index"] == file).all():
            continue
        df["meta/episodes/chunk_index"], df["meta/episodes/file_index"] = chunk, file
        df.to_parquet(path.with_suffix(".tmp"), index=False)
        os.replace(path.with_suffix(".tmp"), path)


def compact_dataset(root: str | Path, repo_id: str = "local/cosmos3") -> bool:
    """Pack a v3 dataset's data and video files into as few as its size limits allow (info.json's
    data_files_size_in_mb / video_files_size_in_mb), with lerobot's own `aggregate_datasets` (videos are
    stream-copied, not re-encoded). The packed copy is built beside `root` and swapped in by two renames;
    `recover_dataset` finishes or undoes a swap a kill cut short. -> whether anything was packed."""
    import shutil

    from lerobot.datasets.aggregate import aggregate_datasets

    root = Path(root)
    recover_dataset(root)
    if not (root / "meta" / "info.json").is_file() or max(file_counts(root).values()) <= 1:
        return False
    info = json.loads((root / "meta" / "info.json").read_text())
    tmp, old = _siblings(root)
    aggregate_datasets([repo_id], repo_id, roots=[root], aggr_root=tmp,
                       data_files_size_in_mb=info.get("data_files_size_in_mb"),
                       video_files_size_in_mb=info.get("video_files_size_in_mb"),
                       chunk_size=info.get("chunks_size"))
    _locate_episode_rows(tmp)
    if (root / EPISODES_FILE).is_file():
        shutil.copyfile(root / EPISODES_FILE, tmp / EPISODES_FILE)
    fsync_tree(tmp)
    os.replace(root, old)
    os.replace(tmp, root)
    fsync_paths([root.parent])
    shutil.rmtree(old)
    from lerobot.datasets.video_utils import _default_decoder_cache

    _default_decoder_cache.clear()  # decoders cached by path would read the replaced per-episode files
    return True


def open_dataset(root: str | Path, repo_id: str = "local/cosmos3", **kwargs):
    """`LeRobotDataset` for a local root, offline, with a clear error when it is not a dataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a LeRobot dataset (no meta/info.json); collect one with"
                                " `cosmos3-robot collect --out DIR`")
    if (root / JOURNAL).is_file():
        raise UserError(f"{str(root)!r}: an episode's save was interrupted ({JOURNAL} is there); rerun the same "
                         "`cosmos3-robot collect --out` to resume, or call cosmos3_robot.datasets.recover_dataset")
    check_files(root, repo_id)
    return LeRobotDataset(repo_id, root=root, **kwargs)


def check_files(root: Path, repo_id: str = "local/cosmos3") -> None:
    """Every data and video file the dataset's metadata lists must be there: otherwise name the first missing
    one and its episodes (lerobot itself would fall back to the hub and fail offline, naming neither)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    try:
        meta = LeRobotDatasetMetadata(repo_id, root=root)
    except Exception as e:  # a broken meta/ file: say which dataset and how to recover
        raise UserError(f"{str(root)!r}: its metadata (meta/) cannot be read ({type(e).__name__}: {e}); restore meta/ "
                         "from a copy, or re-collect into a new directory") from e
    missing: dict[str, list[int]] = {}
    for ep in range(meta.total_episodes):
        paths = [meta.get_data_file_path(ep)] + [meta.get_video_file_path(ep, k) for k in meta.video_keys]
        for rel in paths:
            if not (root / rel).is_file():
                missing.setdefault(str(rel), []).append(ep)
    if not missing:
        _probe_files(root, meta)
    if missing:
        rel, eps = next(iter(missing.items()))
        raise FileNotFoundError(f"{str(root)!r} is damaged: {rel} is missing (episodes {eps}); {len(missing)} file(s) "
                                "missing in all. Restore the file from a copy, or re-collect those episodes into a "
                                "new directory")


def _probe_files(root: Path, meta) -> None:
    """Open every data parquet's footer and every video's stream header (cheap), so a corrupt file is named
    here, not deep inside lerobot's loader."""
    import av
    import pyarrow.parquet as pq

    seen = set()
    for ep in range(meta.total_episodes):
        for rel, kind in [(meta.get_data_file_path(ep), "data")] + [(meta.get_video_file_path(ep, k), "video")
                                                                     for k in meta.video_keys]:
            if rel in seen:
                continue
            seen.add(rel)
            try:
                if kind == "data":
                    pq.read_metadata(root / rel)
                else:
                    with av.open(str(root / rel)) as container:
                        if not container.streams.video:
                            raise ValueError("no video stream")
            except Exception as e:  # noqa: BLE001 (pyarrow and PyAV raise many kinds)
                raise UserError(f"{str(root)!r} is damaged: {rel} cannot be read ({type(e).__name__}: "
                                f"{str(e)[:160]}); restore it from a copy, or re-collect into a new directory") from None


def dataset_normalizers(root: str | Path, spec: EmbodimentSpec | str, clamp: float | None = None
                        ) -> dict[str, Normalizer]:
    """Normalizers for `action` / `observation.state` straight from the dataset's `meta/stats.json`."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    path = Path(root) / "meta" / "stats.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; lerobot writes it when the dataset is finalized")
    return normalizers_from_stats(spec, json.loads(path.read_text()), clamp=clamp)


def _decode_episode(ds, ep: int, key: str, timestamps: list[float]) -> np.ndarray:
    """All frames of one episode's camera in one decoder pass -> (T, H, W, 3) uint8."""
    from lerobot.datasets.video_utils import decode_video_frames

    start = ds.meta.episodes[ep][f"videos/{key}/from_timestamp"]
    path = ds.root / ds.meta.get_video_file_path(ep, key)
    frames = decode_video_frames(path, [start + t for t in timestamps], ds.tolerance_s)
    frames = frames.reshape(len(timestamps), *frames.shape[-3:])  # (T, 3, H, W) float in [0, 1]
    return (frames.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def load_episodes(root: str | Path, repo_id: str = "local/cosmos3", episodes: list[int] | None = None) -> list[dict]:
    """Every episode (or the `episodes` listed) as in-memory arrays: frames per camera uint8
    (T, H, W, 3), state, action, reward, success, task, plus the sidecar record. Decodes each video
    once (training input)."""
    ds = open_dataset(root, repo_id)
    meta = {m["episode_index"]: m for m in read_episode_meta(root)}
    cams = [k for k, v in ds.meta.features.items() if v["dtype"] in ("video", "image")]
    hf = ds.hf_dataset.with_format("numpy")
    episode_index = np.asarray(hf["episode_index"])
    out = []
    wanted = range(ds.meta.total_episodes) if episodes is None else episodes
    for ep in wanted:
        if not 0 <= ep < ds.meta.total_episodes:
            raise UserError(f"episode {ep} is out of range: {str(root)!r} has {ds.meta.total_episodes} episodes")
        idx = np.nonzero(episode_index == ep)[0]
        timestamps = [float(t) for t in np.asarray(hf[idx]["timestamp"])]
        frames = {c: _decode_episode(ds, ep, c, timestamps) for c in cams}
        rows = hf[idx]
        out.append({
            "frames": frames,
            "state": np.asarray(rows["observation.state"], dtype=np.float32) if "observation.state" in rows else None,
            "action": np.asarray(rows["action"], dtype=np.float32),
            "reward": np.asarray(rows["next.reward"], dtype=np.float32).reshape(-1),
            "success": np.asarray(rows["next.success"]).reshape(-1).astype(bool),
            "task": ds.meta.tasks.index[int(np.asarray(rows["task_index"])[0])] if len(idx) else "",
            "meta": meta.get(ep, {}),
        })
    return out
