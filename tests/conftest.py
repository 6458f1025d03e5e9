import os

# Nothing may reach a hub at test time; MuJoCo renders headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
# ONNX graphs the tests export go to a fresh folder, not the user's cache (shipped ones are in the checkpoints)
import tempfile  # noqa: E402

os.environ["COSMOS3_ROBOT_CACHE"] = tempfile.mkdtemp(prefix="cosmos3_robot_test_cache_")

import torch  # noqa: E402

# Tiny models run batch-1 steps: one thread avoids oversubscription when other processes share
# the 2 CPU cores, and keeps timings steady.
torch.set_num_threads(1)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fast_video_codec(monkeypatch):
    """Tests record with H.264: lerobot's default AV1 (the product's default, so data merges with lerobot/pusht)
    costs about 2 s more per recorded episode on this CPU. The tests of that default restore it
    (`lerobot_default_codec`)."""
    from cosmos3_robot.datasets import lerobot_io

    monkeypatch.setattr(lerobot_io, "DEFAULT_VCODEC", "h264")


@pytest.fixture
def lerobot_default_codec(monkeypatch):
    from cosmos3_robot.datasets import lerobot_io

    monkeypatch.setattr(lerobot_io, "DEFAULT_VCODEC", "libsvtav1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny untrained world model with PushT metadata (its output heads given small random
    weights): enough to exercise the learned env, policies, eval and CLI without training."""
    from cosmos3_robot.embodiments import Normalizer
    from cosmos3_robot.model import WorldModel, get_config

    torch.manual_seed(0)
    model = WorldModel(get_config("tiny"))
    for head in (model.frame_out, model.judge_head, model.action_out, model.state_out):
        torch.nn.init.normal_(head.weight, std=0.05)
    samples = np.random.default_rng(0).uniform(0, 512, size=(100, 2))
    model.metadata = {"embodiment": "pusht", "context": 2, "success_threshold": 0.9, "normalizers": {
        k: Normalizer.fit(samples, "min_max", feature=k).to_dict() for k in ("action", "observation.state")}}
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def state_checkpoint(tmp_path_factory):
    """A 3-episode real PushT dataset and a tiny world model trained on it with the T's perceived pose in
    the state and a conv frame head that reads the state: the base the pose dynamics head builds on."""
    from cosmos3_robot.datasets import LeRobotRecorder
    from cosmos3_robot.eval.rollout import collect
    from cosmos3_robot.train.world_model import TrainConfig, train
    from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy

    root = tmp_path_factory.mktemp("pd") / "pusht"
    env = PushTRealEnv(max_episode_steps=15)
    collect(env, make_pusht_policy("expert-noise0.2"), 3, LeRobotRecorder(root, env.embodiment), progress=False)
    base = tmp_path_factory.mktemp("pd") / "base"
    train(TrainConfig(dataset=str(root), out=str(base), preset="tiny", tokenizer_steps=20, tokenizer_batch=8,
                      steps=5, judge_steps=0, batch_size=8, progress=False, frame_head="conv", frame_prediction="x0",
                      perceive_state="pusht_block_pose", conv_head_state=6, state_geometry="point:0,pose:2"))
    return root, base


def tiny_pusht_world(dynamics_of_spec):
    """An untrained structured PushT world: a 3-layer renderer and the dynamics `dynamics_of_spec(spec)`
    gives (the baseline MLP's width or the tower's config); torch seeded 0 first. -> (world, spec)."""
    from cosmos3_robot.embodiments import Normalizer, load_spec
    from cosmos3_robot.model import StateRendererConfig
    from cosmos3_robot.tasks.pusht.structured import PushTWorld, task_config

    torch.manual_seed(0)
    spec = load_spec("pusht")
    norm = Normalizer.fit(np.random.default_rng(0).uniform(0, 512, (100, 2)), "min_max", feature="observation.state")
    renderer = StateRendererConfig("point:0,pose:2", width=16, layers=3, ae_widths=(8, 8, 8))
    return PushTWorld(task_config(norm.to_dict(), dynamics_of_spec(spec), renderer), spec), spec


def save_structured(world, spec, path):
    from cosmos3_robot.backends.structured import StructuredBackend
    from cosmos3_robot.tasks.pusht.structured import ENTRY_POINT

    StructuredBackend(world, spec, 2, 0.9, ENTRY_POINT).save(path)
    return path


@pytest.fixture(scope="session")
def tower_checkpoint(tmp_path_factory):
    """A tiny untrained structured PushT model whose dynamics is the Generator tower (sampled, 3 samples)."""
    from cosmos3_robot.tasks.pusht.structured import tower_config

    world, spec = tiny_pusht_world(lambda spec: tower_config(spec, dim=16, layers=1, ffn_dim=16, head_width=16,
                                                             samples=3, step_with="sample"))
    torch.nn.init.constant_(world.dynamics.gate.bias, 5.0)  # every entity moves: the sampled changes show
    return save_structured(world, spec, tmp_path_factory.mktemp("tower") / "pusht")


def _lerobot_train(root, steps: int = 2):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from cosmos3_robot.datasets import LeRobotRecorder
    from cosmos3_robot.eval.rollout import collect
    from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy

    env = PushTRealEnv(max_episode_steps=12)
    collect(env, make_pusht_policy("expert"), 2, LeRobotRecorder(root / "data", env.embodiment), progress=False)
    cmd = [str(Path(sys.executable).parent / "lerobot-train"), "--dataset.repo_id=local/cosmos3",
           f"--dataset.root={root / 'data'}", "--policy.type=act", "--policy.pretrained_backbone_weights=null",
           "--policy.dim_model=32", "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1",
           "--policy.n_decoder_layers=1", "--policy.chunk_size=4", "--policy.n_action_steps=4",
           "--policy.use_vae=false", "--policy.push_to_hub=false", "--policy.device=cpu", f"--steps={steps}",
           "--batch_size=2", f"--save_freq={steps}", "--num_workers=0", "--wandb.enable=false",
           f"--output_dir={root / 'out'}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"})
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "out" / "checkpoints" / "last" / "pretrained_model"


@pytest.fixture(scope="session")
def lerobot_policy_dir(tmp_path_factory):
    """A tiny ACT trained offline for a few steps by lerobot's own `lerobot-train` on our data."""
    return _lerobot_train(tmp_path_factory.mktemp("act"))


# ---------------------------------------------------------------- DROID's raw layout, from DROID's own schema
# References (droid-dataset/droid): postprocessing/parse.py (parse_trajectory, parse_timestamp),
# postprocessing/schema.py (TRAJECTORY_SCHEMA: the metadata fields), camera_utils/info.py (camera types:
# hand 0, varied 1), trajectory_utils/trajectory_writer.py (the h5 tree, one dataset per leaf, first axis
# time), and the RLDS builder's step reads (droid_dataset_builder: observation robot_state cartesian_position /
# joint_positions / gripper_position, the six-entry action_dict, camera_type, timestamp/cameras,
# controller_info/movement_enabled). Typed in here; no project code builds or checks these.

DROID_PATTERNS = ["%a_%b__%d_%H:%M:%S_%Y", "%a_%b_%d_%H:%M:%S_%Y", "%a_%b__%d_%H_%M_%S_%Y", "%a_%b_%d_%H_%M_%S_%Y"]


def droid_reference_reads(episode, videos: bool = True):
    """What DROID's own code needs from one raw episode folder, checked as that code reads it (the code itself was
    run on our episodes with scripts/check_droid_with_droid_code.py; docs/droid.md has its results):
    - droid/postprocessing/parse.py `parse_timestamp` (folder-name patterns) and `parse_trajectory` (h5 attrs,
      action/joint_position's length, camera_type, camera_extrinsics/<serial>_left; hdf5_path relative to <lab>/);
    - droid/postprocessing/util/validate.py `validate_metadata_record`: no metadata field is null;
    - the RLDS builder's droid_utils.py `get_hdf5_length`: every h5 dataset has the same length;
    - with `videos`, both `RecordedMultiCameraWrapper`s (droid's camera_utils/wrappers and the builder's
      droid_utils.py): every `recordings/MP4/*.mp4` is opened and its name (less .mp4) looked up in
      observation/camera_type (the builder skips names containing 'stereo'; droid's raises KeyError on any other
      name); droid's mp4_reader.py opens `<name>_timestamps.json` and drops a frame whose time differs from
      observation/timestamp/cameras/<name>_frame_received; `read_camera` decodes with cv2.VideoCapture (BGR) and
      splits every frame at width // 2 into `<name>_left` and `<name>_right`; the builder's `_parse_example` then
      resizes to 320x180 (PIL bicubic) and flips BGR -> RGB.
    -> the record parse_trajectory would build (its camera part), the builder's first and last steps and, with
    `videos`, {serial: (left RGB frames, right RGB frames)} as those readers return them."""
    import json
    from datetime import datetime
    from pathlib import Path

    import cv2
    import h5py

    episode = Path(episode)
    stamps = []
    for pattern in DROID_PATTERNS:  # parse_timestamp
        try:
            stamps.append(datetime.strptime(episode.name, pattern))
        except ValueError:
            pass
    assert stamps, f"folder name {episode.name!r} matches none of parse_timestamp's patterns"
    assert episode.parent.name == stamps[0].strftime("%Y-%m-%d"), "DROID nests <date>/<time>/"
    assert episode.parent.parent.name in ("success", "failure"), "DROID nests <lab>/<success|failure>/"
    lab_dir = episode.parents[2]
    meta = json.loads(next(episode.glob("metadata_*.json")).read_text())
    assert [k for k, v in meta.items() if v is None] == [], "validate_metadata_record: null fields"
    assert meta["hdf5_path"] == str(episode.relative_to(lab_dir) / "trajectory.h5"), "parse.py: relative to <lab>/"
    for key in [k for k in meta if k.endswith("_mp4_path")]:
        assert (lab_dir / meta[key]).is_file(), f"{key} {meta[key]!r} is not a file under <lab>/"
    lengths = set()
    with h5py.File(episode / "trajectory.h5", "r") as h5:
        h5.visititems(lambda name, obj: lengths.add(len(obj)) if isinstance(obj, h5py.Dataset) else None)
        assert len(lengths) == 1, f"get_hdf5_length asserts one length; found {sorted(lengths)}"
        assert "action" in h5.keys()
        attrs = h5.attrs
        T = int(h5["action"]["joint_position"].shape[0])
        camera_types, extrinsics = h5["observation"]["camera_type"], h5["observation"]["camera_extrinsics"]
        exts = ["ext1", "ext2"]
        roles = {("wrist" if camera_types[s][0] == 0 else exts.pop(0)): {"serial": s, "extrinsics": extrinsics[f"{s}_left"][0]}
                 for s in sorted(camera_types.keys())}
        record = {"success": bool(attrs["success"]), "current_task": attrs["current_task"], "trajectory_length": T,
                  "robot_serial": attrs.get("robot_serial_number", "unknown"),
                  "droid_version": str(attrs.get("version_number", "-1.0")),
                  **{f"{r}_cam_serial": v["serial"] for r, v in roles.items()},
                  **{f"{r}_cam_extrinsics": v["extrinsics"].tolist() for r, v in roles.items()}}
        steps = []
        for t in (0, T - 1):
            obs, act = h5["observation"], h5["action"]
            step = {"cartesian_position": obs["robot_state"]["cartesian_position"][t],
                    "joint_position": obs["robot_state"]["joint_positions"][t],
                    "gripper_position": np.array([obs["robot_state"]["gripper_position"][t]]),
                    "action_dict": {k: (np.array([act[k][t]]) if k.startswith("gripper") else act[k][t])
                                    for k in ("cartesian_position", "cartesian_velocity", "gripper_position",
                                              "gripper_velocity", "joint_position", "joint_velocity")},
                    "camera_type": {s: int(camera_types[s][t]) for s in camera_types},
                    "frame_received": {s: int(obs["timestamp"]["cameras"][f"{s}_frame_received"][t]) for s in camera_types},
                    "movement_enabled": bool(obs["controller_info"]["movement_enabled"][t])}
            shapes = {"cartesian_position": (6,), "joint_position": (7,), "gripper_position": (1,)}
            assert {k: step[k].shape for k in shapes} == shapes
            assert {k: v.shape for k, v in step["action_dict"].items()} == {
                "cartesian_position": (6,), "cartesian_velocity": (6,), "gripper_position": (1,),
                "gripper_velocity": (1,), "joint_position": (7,), "joint_velocity": (7,)}
            steps.append(step)
        serials = list(camera_types)
        received = {s: h5[f"observation/timestamp/cameras/{s}_frame_received"][()] for s in serials}
    for s in serials:
        assert (episode / "recordings" / "MP4" / f"{s}.mp4").is_file()
    if not videos:
        return record, steps
    views = {}
    for mp4 in sorted((episode / "recordings" / "MP4").glob("*.mp4")):
        name = mp4.name[:-4]
        assert name in serials, f"{mp4.name}: droid's RecordedMultiCameraWrapper looks {name!r} up in camera_type"
        stamps = json.loads((mp4.parent / f"{name}_timestamps.json").read_text())
        assert stamps == received[name].tolist(), "mp4_reader drops frames whose time differs from the h5's"
        cap, left, right = cv2.VideoCapture(str(mp4)), [], []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            w = frame.shape[1] // 2
            left.append(frame[:, :w, ::-1])
            right.append(frame[:, w:, ::-1])
        cap.release()
        assert len(left) == T, f"{mp4.name}: {len(left)} frames for {T} steps"
        views[name] = (np.stack(left), np.stack(right))
    return record, steps, views


def write_droid_fixture(root, T: int = 5, success: bool = True, size=(360, 640)):
    """One episode as DROID's data collector writes it, with none of the project's extra keys: three ZED
    cameras (wrist 13062452, exterior 24259877 and 26405488, one flat colour each so their identity shows),
    H.264 yuv420p MP4s at `size`, the h5 tree and attrs, metadata with TRAJECTORY_SCHEMA's fields. -> its folder
    and the arrays it holds."""
    from pathlib import Path

    import av
    import h5py

    rng = np.random.default_rng(0)
    folder = Path(root) / "AUTOLab" / ("success" if success else "failure") / "2023-07-07" / "Fri_Jul__7_09:42:23_2023"
    (folder / "recordings" / "MP4").mkdir(parents=True)
    serials = {"wrist": "13062452", "ext1": "24259877", "ext2": "26405488"}
    colours = {"wrist": (200, 30, 30), "ext1": (30, 200, 30), "ext2": (30, 30, 200)}
    arrays = {"observation/robot_state/cartesian_position": rng.normal(size=(T, 6)),
              "observation/robot_state/joint_positions": rng.normal(size=(T, 7)),
              "observation/robot_state/joint_velocities": rng.normal(size=(T, 7)),
              "observation/robot_state/gripper_position": rng.uniform(size=T),
              "action/cartesian_position": rng.normal(size=(T, 6)), "action/cartesian_velocity": rng.normal(size=(T, 6)),
              "action/gripper_position": rng.uniform(size=T), "action/gripper_velocity": rng.normal(size=T),
              "action/joint_position": rng.normal(size=(T, 7)), "action/joint_velocity": rng.normal(size=(T, 7))}
    ms = 1688722943000 + 67 * np.arange(T)
    with h5py.File(folder / "trajectory.h5", "w") as h5:
        for k, v in arrays.items():
            h5[k] = v
        for role, s in serials.items():
            h5[f"observation/camera_type/{s}"] = np.full(T, 0 if role == "wrist" else 1)
            h5[f"observation/camera_extrinsics/{s}_left"] = np.tile(rng.normal(size=6), (T, 1))
            h5[f"observation/camera_extrinsics/{s}_right"] = np.tile(rng.normal(size=6), (T, 1))
            for k in ("estimated_capture", "frame_received", "read_start", "read_end"):
                h5[f"observation/timestamp/cameras/{s}_{k}"] = ms
        for k in ("controller_on", "movement_enabled"):
            h5[f"observation/controller_info/{k}"] = np.ones(T, bool)
        h5["observation/controller_info/success"] = np.zeros(T, bool)
        h5["observation/controller_info/failure"] = np.zeros(T, bool)
        for k in ("step_start", "policy_start", "sleep_start", "control_start", "step_end"):
            h5[f"observation/timestamp/control/{k}"] = ms
        h5.attrs.update({"success": success, "failure": not success, "current_task": "put the marker in the cup",
                         "user": "Alice", "robot_serial_number": "panda-1", "version_number": "1.3"})
    for role, s in serials.items():
        with av.open(str(folder / "recordings" / "MP4" / f"{s}.mp4"), "w") as c:
            stream = c.add_stream("h264", rate=15)
            stream.height, stream.width, stream.pix_fmt = size[0], size[1], "yuv420p"
            for _ in range(T):
                img = np.zeros((*size, 3), np.uint8) + np.array(colours[role], np.uint8)
                for p in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in stream.encode():
                c.mux(p)
    uuid = "AUTOLab+5d05c5aa+2023-07-07-09h-42m-23s"
    meta = {"uuid": uuid, "lab": "AUTOLab", "user": "Alice", "user_id": "5d05c5aa", "date": "2023-07-07",
            "timestamp": "2023-07-07-09h-42m-23s", "hdf5_path": f"{'success' if success else 'failure'}/2023-07-07/Fri_Jul__7_09:42:23_2023/trajectory.h5",
            "building": "N/A", "scene_id": 1, "success": success, "robot_serial": "panda-1", "droid_version": "1.3",
            "current_task": "put the marker in the cup", "trajectory_length": T,
            **{f"{r}_cam_serial": s for r, s in serials.items()}}
    (folder / f"metadata_{uuid}.json").write_text(__import__("json").dumps(meta))
    return folder, arrays, colours


def free_port() -> int:
    """A TCP port nothing listens on now (for servers the tests start)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def task_without_learned_sim(monkeypatch):
    """A registered task with a real simulator only (every shipped task has a learned one)."""
    from cosmos3_robot.tasks import REGISTRY, TaskInfo

    monkeypatch.setitem(REGISTRY, "bare_scene", TaskInfo(
        name="bare_scene", embodiment="aloha", real_id="cosmos3_robot/AlohaTransferCubeReal-v0",
        real_entry_point="cosmos3_robot.tasks.aloha.real:AlohaTransferCubeRealEnv"))
    return "bare_scene"
