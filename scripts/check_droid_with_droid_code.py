"""Run DROID's own code on DROID-layout episodes we wrote, and compare what it reads with our frames.

DROID's code is not packaged, so this runs a checkout of each repository (fetch them yourself):
  - droid-dataset/droid: `postprocessing/parse.py` `parse_trajectory` + `schema.py` + `util/validate.py`
    `validate_metadata_record`; `trajectory_utils/misc.py` `load_trajectory` with its `TrajectoryReader`,
    `RecordedMultiCameraWrapper` and `MP4Reader` (robot-side imports such as the ZED SDK, Polymetis and
    `droid.misc.parameters`' ArUco call are stood in for; `load_trajectory`'s own source is run as written);
  - kpertsch/droid_dataset_builder: `droid/droid.py` `_generate_examples` (the RLDS builder's per-episode
    parse, tensorflow / tfds stood in for since only their types are named there) over `droid_utils.load_trajectory`.

    python scripts/check_droid_with_droid_code.py --droid PATH --builder PATH EPISODE_ROOT [EPISODE_ROOT ...]

Prints one JSON line per episode and reader: steps read, and the largest grey-level difference between DROID's
images and the frames our reader returns (0 = exact). Results for this repository are in docs/droid.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import types
from pathlib import Path


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _load(name: str, path: Path) -> types.ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _ours(episode: Path) -> dict:
    from cosmos3_robot.datasets import read_droid_episode

    ep = read_droid_episode(episode)
    return {ep["metadata"]["camera_serials"][n]: f for n, f in ep["frames"].items()} | {"_ep": ep}


def run_droid(repo: Path, episode: Path) -> list[dict]:
    """droid-dataset/droid's readers on one episode."""
    import numpy as np

    sys.path.insert(0, str(repo))
    for pkg in ("droid", "droid.postprocessing", "droid.postprocessing.util", "droid.camera_utils",
                "droid.camera_utils.recording_readers", "droid.camera_utils.wrappers", "droid.trajectory_utils",
                "droid.misc"):
        _stub(pkg, __path__=[str(repo / pkg.replace(".", "/"))])
    out = []
    schema = _load("droid.postprocessing.schema", repo / "droid/postprocessing/schema.py")
    parse = _load("droid.postprocessing.parse", repo / "droid/postprocessing/parse.py")
    validate = _load("droid.postprocessing.util.validate", repo / "droid/postprocessing/util/validate.py")
    assert schema.TRAJECTORY_SCHEMA
    meta = json.loads(next(episode.glob("metadata_*.json")).read_text())
    lab_dir = episode.parents[2]  # <lab>/<outcome>/<date>/<time>
    ok, record = parse.parse_trajectory(lab_dir, episode, meta["uuid"], meta["lab"], meta["user"], meta["user_id"],
                                        parse.parse_timestamp(episode))
    same = {k: (record or {}).get(k) == meta.get(k) for k in (record or {})}
    out.append({"reader": "droid parse_trajectory", "valid": ok,
                "fields_equal_to_our_metadata": sum(same.values()), "fields": len(same),
                "differ": [k for k, v in same.items() if not v],
                "validate_metadata_record(ours)": validate.validate_metadata_record(meta),
                "validate_metadata_record(parsed)": bool(ok) and validate.validate_metadata_record(record)})
    # the readers: parameters.py calls cv2.aruco.Dictionary_get (gone from OpenCV 4.7) and sets empty camera ids
    _stub("droid.misc.parameters", hand_camera_id="", varied_camera_1_id="", varied_camera_2_id="")
    _stub("droid.camera_utils.recording_readers.svo_reader", SVOReader=None)
    _load("droid.camera_utils.info", repo / "droid/camera_utils/info.py")
    _load("droid.camera_utils.recording_readers.mp4_reader", repo / "droid/camera_utils/recording_readers/mp4_reader.py")
    wrapper = _load("droid.camera_utils.wrappers.recorded_multi_camera_wrapper",
                    repo / "droid/camera_utils/wrappers/recorded_multi_camera_wrapper.py")
    reader = _load("droid.trajectory_utils.trajectory_reader", repo / "droid/trajectory_utils/trajectory_reader.py")
    source = (repo / "droid/trajectory_utils/misc.py").read_text()
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "load_trajectory")
    from droid.camera_utils.info import camera_type_to_string_dict

    scope = {"np": np, "TrajectoryReader": reader.TrajectoryReader, "camera_type_to_string_dict": camera_type_to_string_dict,
             "RecordedMultiCameraWrapper": wrapper.RecordedMultiCameraWrapper}
    exec(compile(ast.Module([fn], []), str(repo / "droid/trajectory_utils/misc.py"), "exec"), scope)
    steps = scope["load_trajectory"](str(episode / "trajectory.h5"), recording_folderpath=str(episode / "recordings/MP4"))
    ours = _ours(episode)
    diff = 0
    for t, step in enumerate(steps):
        for serial, frames in ours.items():
            if serial != "_ep":  # DROID's readers give cv2's BGR
                diff = max(diff, int(np.abs(step["observation"]["image"][f"{serial}_left"][..., ::-1].astype(int)
                                            - frames[t]).max()))
    out.append({"reader": "droid load_trajectory (MP4Reader)", "steps": len(steps),
                "h5_steps": int(ours["_ep"]["metadata"]["trajectory_length"]), "max_grey_diff_left": diff,
                "images": sorted(steps[0]["observation"]["image"]) if len(steps) else []})
    return out


def run_builder(repo: Path, episode: Path) -> list[dict]:
    """kpertsch/droid_dataset_builder's RLDS example parse on one episode."""
    import numpy as np

    sys.path.insert(0, str(repo))
    class Anything(types.ModuleType):  # the builder names tf / tfds types in annotations and class bodies only
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(name)

        def __call__(self, *args, **kwargs):
            return Anything("call")

    for name in ("tensorflow", "tensorflow_datasets"):
        sys.modules[name] = Anything(name)
    _stub("droid.tfds_utils", MultiThreadedDatasetBuilder=object)
    builder = _load("droid_builder", repo / "droid/droid.py")
    results = list(builder._generate_examples([str(episode)]))
    if results[0] is None:
        return [{"reader": "builder _generate_examples", "steps": 0, "error": "skipped the episode (see its print)"}]
    _, sample = results[0]
    ep = _ours(episode)["_ep"]
    keys = {"exterior_image_1_left": "exterior_1_left", "exterior_image_2_left": "exterior_2_left",
            "wrist_image_left": "wrist_left"}
    diff = {k: max(int(np.abs(s["observation"][k].astype(int) - ep["frames"][n][t]).max())
                   for t, s in enumerate(sample["steps"])) for k, n in keys.items()}
    state = max(float(np.abs(s["observation"]["joint_position"] - ep["state"][t][:7]).max())
                for t, s in enumerate(sample["steps"]))
    return [{"reader": "builder _generate_examples", "steps": len(sample["steps"]), "max_grey_diff": diff,
             "max_joint_diff": state, "reward_last": sample["steps"][-1]["reward"]}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--droid", type=Path, help="a checkout of droid-dataset/droid")
    ap.add_argument("--builder", type=Path, help="a checkout of kpertsch/droid_dataset_builder")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: (droid|builder, episode) in this process
    ap.add_argument("roots", nargs="*", type=Path)
    args = ap.parse_args()
    if args.one:
        which, episode = args.one
        fn = run_droid if which == "droid" else run_builder
        for row in fn(args.droid if which == "droid" else args.builder, Path(episode)):
            print(json.dumps({"episode": episode, **row}))
        return
    from cosmos3_robot.datasets import list_droid_episodes

    for root in args.roots:
        for episode in list_droid_episodes(root):
            for which in ("droid", "builder"):
                if getattr(args, which) is None:
                    continue
                # each in its own process: both repositories name their package `droid`
                cmd = [sys.executable, __file__, f"--{which}", str(getattr(args, which)), "--one", which, str(episode)]
                res = subprocess.run(cmd, capture_output=True, text=True)
                lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
                print("\n".join(lines) if lines else json.dumps({"episode": str(episode), "reader": which,
                                                                  "error": res.stderr.strip()[-800:]}))


if __name__ == "__main__":
    main()
