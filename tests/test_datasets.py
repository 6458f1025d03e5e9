import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cosmos3_robot.datasets import (
    DroidWriter,
    LeRobotRecorder,
    TrainingWindows,
    dataset_normalizers,
    file_counts,
    droid_to_lerobot,
    lerobot_delta_timestamps,
    list_droid_episodes,
    load_episodes,
    open_dataset,
    read_droid_episode,
    read_episode_meta,
)
from cosmos3_robot.embodiments import CameraCalibration, load_spec
from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval.rollout import collect, rollout
from cosmos3_robot.tasks.pusht import make_pusht_policy


def psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-10))


class Tap:
    """A writer wrapper that remembers what the env returned, to compare with what was stored."""

    def __init__(self, writer):
        self.writer, self.frames, self.states, self.actions = writer, [], [], []

    def existing_episodes(self):
        return self.writer.existing_episodes()

    def add_frame(self, obs, action, reward, success, task, done=False):
        self.frames.append(obs["observation.image"].copy())
        self.states.append(obs["observation.state"].copy())
        self.actions.append(np.asarray(action, np.float32).copy())
        self.dones = [*getattr(self, "dones", []), done]
        self.writer.add_frame(obs, action, reward, success, task, done=done)

    def save_episode(self, **meta):
        return self.writer.save_episode(**meta)


@pytest.fixture(scope="module")
def pusht_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot") / "pusht"
    env = PushTRealEnv(max_episode_steps=12)
    tap = Tap(LeRobotRecorder(root, env.embodiment))
    results = collect(env, make_pusht_policy("expert-noise0.2"), 3, tap, progress=False)
    return root, tap, results


def test_lerobot_dataset_reloads_with_lerobot_and_matches_env(pusht_dataset):
    root, tap, results = pusht_dataset
    ds = open_dataset(root)
    assert ds.meta.total_episodes == 3 and ds.meta.total_frames == 36 == len(tap.frames)
    assert ds.meta.fps == 10
    for i in (0, 13, 35):
        item = ds[i]
        img = (item["observation.image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert psnr(img, tap.frames[i]) > 30  # h264 video: lossy but close
        np.testing.assert_array_equal(item["observation.state"].numpy(), tap.states[i])
        np.testing.assert_array_equal(item["action"].numpy(), tap.actions[i])
    meta = read_episode_meta(root)
    assert [m["seed"] for m in meta] == [0, 1, 2] and all(m["policy"] == "expert-noise0.2" for m in meta)
    assert [m["success"] for m in meta] == [r["success"] for r in results]


# lerobot/pusht's meta/info.json features (huggingface.co/datasets/lerobot/pusht, codebase v3.0): the schema
# LeRobot's PushT policies (diffusion_pusht, ...) and its PushtEnv expect. Reference values, typed in here.
LEROBOT_PUSHT_FEATURES = {
    "observation.image": ("video", [96, 96, 3]), "observation.state": ("float32", [2]), "action": ("float32", [2]),
    "episode_index": ("int64", [1]), "frame_index": ("int64", [1]), "timestamp": ("float32", [1]),
    "next.reward": ("float32", [1]), "next.done": ("bool", [1]), "next.success": ("bool", [1]),
    "index": ("int64", [1]), "task_index": ("int64", [1])}
LEROBOT_PUSHT_TASK = "Push the T-shaped block onto the T-shaped target."


def test_collected_pusht_matches_lerobot_pusht_schema(pusht_dataset):
    root, tap, _ = pusht_dataset
    info = json.loads((root / "meta" / "info.json").read_text())
    assert {k: (v["dtype"], v["shape"]) for k, v in info["features"].items()} == LEROBOT_PUSHT_FEATURES
    assert info["features"]["observation.image"]["names"] == ["height", "width", "channel"]
    assert info["fps"] == 10 and info["robot_type"] == "unknown"
    ds = open_dataset(root)
    assert [ds.meta.tasks.index[0]] == [LEROBOT_PUSHT_TASK]
    done = np.array(ds.hf_dataset["next.done"]).ravel()
    ends = np.cumsum([m["length"] for m in read_episode_meta(root)]) - 1
    assert done.sum() == 3 and set(np.flatnonzero(done)) == set(ends)  # each episode's last step, only
    assert tap.dones == list(done)


def test_stats_feed_the_normalizer(pusht_dataset):
    root, tap, _ = pusht_dataset
    norms = dataset_normalizers(root, "pusht")
    actions = np.stack(tap.actions)
    y = norms["action"].normalize(actions)
    assert y.min() == pytest.approx(-1, abs=1e-5) and y.max() == pytest.approx(1, abs=1e-5)  # min_max from stats
    np.testing.assert_allclose(norms["action"].unnormalize(y), actions, rtol=1e-6, atol=1e-4)


def test_training_windows(pusht_dataset):
    root, tap, _ = pusht_dataset
    episodes = load_episodes(root)
    assert len(episodes) == 3 and episodes[0]["frames"]["observation.image"].shape == (12, 96, 96, 3)
    windows = TrainingWindows(episodes, "pusht", context=2, horizon=3)
    assert len(windows) == 36
    w = windows[5]  # episode 0, t = 5: context frames 4, 5; actions 5..7; targets 6..8
    frames = torch.from_numpy(episodes[0]["frames"]["observation.image"]).permute(0, 3, 1, 2)
    assert torch.equal(w["ctx_frames"][:, 0], frames[4:6]) and torch.equal(w["fut_frames"][:, 0], frames[6:9])
    np.testing.assert_array_equal(w["actions"].numpy(), episodes[0]["action"][5:8])
    assert w["instruction"] == load_spec("pusht").task and not w["action_pad"].any()
    start = windows[0]  # before the start the first frame repeats
    assert torch.equal(start["ctx_frames"][0], start["ctx_frames"][1])
    end = windows[11]  # last step: only one real action, the rest padding
    assert end["action_pad"].tolist() == [False, True, True] and torch.all(end["actions"][1:] == 0)


def test_lerobot_native_windows_through_delta_timestamps(pusht_dataset):
    root, _, _ = pusht_dataset
    spec = load_spec("pusht")
    ds = open_dataset(root, delta_timestamps=lerobot_delta_timestamps(spec, context=2, horizon=3))
    item = ds[5]
    assert item["observation.image"].shape == (5, 3, 96, 96) and item["action"].shape == (3, 2)


def test_resume_appends(pusht_dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(pusht_dataset[0], root)
    env = PushTRealEnv(max_episode_steps=5)
    collect(env, make_pusht_policy("expert-noise0.2"), 5, LeRobotRecorder(root, env.embodiment), progress=False)
    meta = read_episode_meta(root)
    assert [m["seed"] for m in meta] == [0, 1, 2, 3, 4]  # seeds 0-2 were there: skipped, not duplicated
    collect(env, make_pusht_policy("random"), 1, LeRobotRecorder(root, env.embodiment), progress=False)
    assert [m["policy"] for m in read_episode_meta(root)][-1] == "random"  # another policy: its own seeds
    assert open_dataset(root).meta.total_episodes == 6


def test_droid_layout_round_trip_preserves_every_array(tmp_path):
    env = PushTRealEnv(max_episode_steps=10)
    calib = CameraCalibration.from_intrinsics(90.0, 90.0, 47.5, 47.5, 96, 96, name="top")
    tap = Tap(DroidWriter(tmp_path / "droid", env.embodiment, calibrations={"top": calib}))
    collect(env, make_pusht_policy("expert"), 2, tap, progress=False)
    episodes = list_droid_episodes(tmp_path / "droid")
    assert len(episodes) == 2
    ep = read_droid_episode(episodes[1])
    assert (episodes[1] / "trajectory.h5").is_file() and list((episodes[1] / "recordings" / "MP4").glob("*.mp4"))
    np.testing.assert_array_equal(ep["frames"]["top"], np.stack(tap.frames[10:]))  # lossless video
    np.testing.assert_array_equal(ep["state"], np.stack(tap.states[10:]))
    np.testing.assert_array_equal(ep["action"], np.stack(tap.actions[10:]))
    assert ep["metadata"]["seed"] == 1 and ep["metadata"]["trajectory_length"] == 10
    serial = ep["metadata"]["camera_serials"]["top"]
    np.testing.assert_allclose(ep["arrays"][f"observation/camera_extrinsics/{serial}_left"][0], calib.to_droid())
    np.testing.assert_array_equal(ep["calibrations"]["top"].K, calib.K)
    # and into LeRobot
    droid_to_lerobot(tmp_path / "droid", tmp_path / "converted", progress=False)
    ds = open_dataset(tmp_path / "converted")
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 20
    np.testing.assert_array_equal(ds[12]["action"].numpy(), tap.actions[12])
    # a second run on the same --out converts nothing twice (matched on DROID's uuid) and says so
    again = droid_to_lerobot(tmp_path / "droid", tmp_path / "converted", progress=False)
    assert again.skipped == 2 and open_dataset(tmp_path / "converted").meta.total_episodes == 2


def test_droid_metadata_for_droid_cameras(tmp_path):
    spec = load_spec("droid")
    writer = DroidWriter(tmp_path, spec)
    obs = {c.key: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    obs["observation.state"] = np.zeros(spec.state.dims, np.float32)
    for _ in range(2):
        writer.add_frame(obs, np.zeros(10), 0.0, False, "pick")
    writer.save_episode(success=False)
    ep = read_droid_episode(list_droid_episodes(tmp_path)[0])
    meta = ep["metadata"]
    assert {"wrist_cam_serial", "ext1_cam_serial", "ext2_cam_serial"} <= set(meta)
    assert set(ep["arrays"]) >= {"observation/robot_state/joint_positions", "observation/robot_state/gripper_position",
                                 "observation/robot_state/cartesian_position", "action/ee_translation"}


SLOW_COLLECT = """
import sys, time
from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.eval.rollout import collect, make_writer
from cosmos3_robot.tasks.pusht import make_pusht_policy

class Slow:
    name = "slow-random"
    def __init__(self): self.p = make_pusht_policy("random")
    def reset(self, seed=None): self.p.reset(seed)
    def select_action(self, obs):
        time.sleep(0.03)
        return self.p.select_action(obs)

env = PushTRealEnv(max_episode_steps=8)
collect(env, Slow(), 100, make_writer(sys.argv[1], sys.argv[2], env.embodiment), progress=False)
"""


@pytest.mark.parametrize("fmt", ["lerobot", "droid"])
def test_sigkill_mid_episode_keeps_finished_episodes(tmp_path, fmt):
    out = tmp_path / "ds"
    script = tmp_path / "collect.py"
    script.write_text(SLOW_COLLECT)
    proc = subprocess.Popen([sys.executable, str(script), fmt, str(out)], env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def finished():
        if fmt == "lerobot":
            return len(read_episode_meta(out)) if out.exists() else 0
        return len(list_droid_episodes(out)) if out.exists() else 0

    deadline = time.time() + 120
    while finished() < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.12)  # a few steps into the next episode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n = finished()
    assert n >= 2
    if fmt == "lerobot":
        ds = open_dataset(out)
        assert ds.meta.total_episodes == n and ds.meta.total_frames == 8 * n
        assert ds[8 * n - 1]["episode_index"].item() == n - 1
        env = PushTRealEnv(max_episode_steps=8)
        from cosmos3_robot.policies import RandomPolicy

        collect(env, RandomPolicy(name="slow-random"), n + 1, LeRobotRecorder(out, env.embodiment), progress=False)
        assert open_dataset(out).meta.total_episodes == n + 1  # resumed and appended
    else:
        for ep in list_droid_episodes(out):
            assert read_droid_episode(ep)["action"].shape == (8, 2)
        assert not [p for ep in list_droid_episodes(out) for p in ep.rglob(".tmp*")]


def test_collect_cli(tmp_path, capsys):
    from cosmos3_robot.cli import main

    assert main(["collect", "--policy", "expert-lag2", "--episodes", "2", "--out", str(tmp_path / "c"),
                 "--max-steps", "6"]) == 0
    assert "collected 2 new episodes" in capsys.readouterr().out
    meta = read_episode_meta(tmp_path / "c")
    assert [m["policy"] for m in meta] == ["expert-lag2"] * 2
    assert main(["collect", "--policy", "genius", "--episodes", "1", "--out", str(tmp_path / "d")]) == 2
    assert main(["convert-droid", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2


def test_view_cli_on_a_lerobot_dataset(pusht_dataset, tmp_path, capsys):
    from cosmos3_robot.cli import main

    root = pusht_dataset[0]
    assert main(["view", str(root), "--episode", "1", "--rrd", str(tmp_path / "v.rrd")]) == 0
    assert "12 steps" in capsys.readouterr().out and (tmp_path / "v.rrd").stat().st_size > 0
    assert main(["view", str(root), "--episode", "7"]) == 2
    assert [len(e["action"]) for e in load_episodes(root, episodes=[2, 0])] == [12, 12]


def test_lossless_video_quality_keeps_frames_for_world_model_training(tmp_path):
    """The default (lerobot's yuv420p CRF 30) distorts the small PushT pusher by tens of grey levels;
    `quality="lossless"` stores frames within RGB<->YUV rounding."""
    errors = {}
    for quality in ("standard", "lossless"):
        env = PushTRealEnv(max_episode_steps=8)
        tap = Tap(LeRobotRecorder(tmp_path / quality, env.embodiment, quality=quality))
        collect(env, make_pusht_policy("expert"), 1, tap, progress=False)
        frames = load_episodes(tmp_path / quality)[0]["frames"]["observation.image"]
        errors[quality] = np.abs(frames.astype(int) - np.stack(tap.frames).astype(int))
    assert errors["lossless"].max() <= 2 and errors["lossless"].mean() < 0.1
    assert errors["standard"].max() > 20 and errors["standard"].mean() > 5 * errors["lossless"].mean()
    with pytest.raises(ValueError, match="video quality 'best'"):
        LeRobotRecorder(tmp_path / "bad", "pusht", quality="best")


def test_reads_and_converts_an_episode_in_droids_own_schema(tmp_path, capsys):
    """An episode built from DROID's documented schema (conftest.write_droid_fixture), with none of our extra
    keys, nested as DROID nests it: the reader maps its cameras by wrist/ext1/ext2 serial, reads the droid
    spec's state and DROID's joint_position action, and convert-droid turns it into a LeRobot dataset."""
    from conftest import droid_reference_reads, write_droid_fixture

    from cosmos3_robot.cli import main

    folder, arrays, colours = write_droid_fixture(tmp_path / "droid", T=5)
    record, _ = droid_reference_reads(folder, videos=False)  # the fixture is what DROID's own code reads
    assert list_droid_episodes(tmp_path / "droid") == [folder]
    ep = read_droid_episode(folder)
    names = {"wrist_left": "wrist", "exterior_1_left": "ext1", "exterior_2_left": "ext2"}
    assert set(ep["frames"]) == set(names) and ep["frames"]["wrist_left"].shape == (5, 360, 640, 3)
    for name, role in names.items():  # each video is its camera's: ext1 is the lower exterior serial
        assert int(np.argmax(ep["frames"][name][0].reshape(-1, 3).mean(0))) == int(np.argmax(colours[role]))
    rs = "observation/robot_state/"
    np.testing.assert_array_equal(ep["state"], np.concatenate(
        [arrays[rs + "joint_positions"], arrays[rs + "gripper_position"][:, None], arrays[rs + "cartesian_position"]], 1))
    assert ep["action_variant"] == "joint_position"
    np.testing.assert_array_equal(ep["action"], np.concatenate(
        [arrays["action/joint_position"], arrays["action/gripper_position"][:, None]], 1))
    assert ep["success"].tolist() == [False] * 4 + [True] and record["wrist_cam_serial"] == "13062452"
    assert main(["convert-droid", str(tmp_path / "droid"), "--out", str(tmp_path / "lerobot")]) == 0
    ds = open_dataset(tmp_path / "lerobot")
    assert ds.meta.total_episodes == 1 and ds.meta.total_frames == 5
    item = ds[4]
    assert tuple(item["observation.images.wrist_left"].shape) == (3, 180, 320)  # resized to the droid spec
    np.testing.assert_allclose(item["action"].numpy(), ep["action"][4].astype(np.float32))
    assert bool(item["next.success"]) and bool(item["next.done"])


def test_sessions_that_each_pack_their_episodes_append_without_losing_any(tmp_path):
    """Three collect sessions on one --out, each closing (packing) its recorder: every episode stays readable.
    LeRobot's aggregate_datasets kept each episode's pre-pack episodes-file index, so the next session wrote
    its metadata past the packed file and the third packing failed on a file that was never there."""
    env = PushTRealEnv(max_episode_steps=4)
    root = tmp_path / "d"
    for policy, n in (("expert", 2), ("random", 3), ("expert-noise0.2", 2)):
        rec = LeRobotRecorder(root, env.embodiment)
        collect(env, make_pusht_policy(policy), n, rec, progress=False)
        rec.close()
    episodes = load_episodes(root)
    assert [len(ep["action"]) for ep in episodes] == [4] * 7
    assert [m["policy"] for m in read_episode_meta(root)] == ["expert"] * 2 + ["random"] * 3 + ["expert-noise0.2"] * 2
    assert max(file_counts(root).values()) == 1  # packed again


def _lerobot_pusht_shaped(root, episodes: int = 2, T: int = 6):
    """A dataset made by lerobot's own LeRobotDataset.create with lerobot/pusht's meta/info.json features
    (names included), robot_type, fps and lerobot's default encoder: what a lerobot user's PushT data is."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    motors = {"motors": ["motor_0", "motor_1"]}
    features = {"observation.image": {"dtype": "video", "shape": (96, 96, 3), "names": ["height", "width", "channel"]},
                "observation.state": {"dtype": "float32", "shape": (2,), "names": motors},
                "action": {"dtype": "float32", "shape": (2,), "names": motors},
                "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
                "next.done": {"dtype": "bool", "shape": (1,), "names": None},
                "next.success": {"dtype": "bool", "shape": (1,), "names": None}}
    ds = LeRobotDataset.create("lerobot/pusht-like", fps=10, features=features, root=root, robot_type="unknown",
                               use_videos=True)
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        for t in range(T):
            ds.add_frame({"observation.image": rng.integers(0, 255, (96, 96, 3), dtype=np.uint8),
                          "observation.state": rng.uniform(0, 512, 2).astype(np.float32),
                          "action": rng.uniform(0, 512, 2).astype(np.float32),
                          "next.reward": np.array([0.0], np.float32), "next.done": np.array([t == T - 1]),
                          "next.success": np.array([False]), "task": LEROBOT_PUSHT_TASK})
        ds.save_episode()
    ds.finalize()
    return root


def test_lerobot_aggregate_merges_real_imagined_and_lerobot_made_pusht_data(tmp_path, lerobot_default_codec):
    """6, 7: lerobot's aggregate_datasets merges our real and imagined PushT data (default encoding) with a
    dataset lerobot made with lerobot/pusht's features, and the merged dataset still tells the imagined episodes."""
    from lerobot.datasets.aggregate import aggregate_datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from cosmos3_robot.cli import main
    from cosmos3_robot.datasets import episode_sources

    assert main(["collect", "--episodes", "2", "--max-steps", "6", "--out", str(tmp_path / "real")]) == 0
    assert main(["collect", "--sim", "learned", "--episodes", "1", "--max-steps", "6",
                 "--out", str(tmp_path / "imagined")]) == 0
    info = json.loads((tmp_path / "real" / "meta" / "info.json").read_text())
    assert info["features"]["observation.image"]["info"]["video.codec"] == "av1"  # lerobot's default, as lerobot/pusht
    assert info["features"]["action"]["names"] == {"motors": ["motor_0", "motor_1"]}
    _lerobot_pusht_shaped(tmp_path / "theirs")
    roots = [tmp_path / "real", tmp_path / "imagined", tmp_path / "theirs"]
    aggregate_datasets(["local/real", "local/imagined", "lerobot/pusht-like"], "local/merged", roots=roots,
                       aggr_root=tmp_path / "merged")
    merged = LeRobotDataset("local/merged", root=tmp_path / "merged")
    assert merged.meta.total_episodes == 5 and len(merged) == 2 * 6 + 6 + 2 * 6
    assert episode_sources(tmp_path / "merged") == {0: "real", 1: "real", 2: "imagined:pusht_tower", 3: "unknown",
                                                    4: "unknown"}
    assert list(merged.meta.episodes["imagined"][:3]) == [False, False, True]  # what LeRobotDataset users see
    assert tuple(merged[13]["observation.image"].shape) == (3, 96, 96)  # the imagined episode's frames decode


def test_convert_droid_offers_lerobots_droid_port_layout(tmp_path):
    """8: `convert-droid --layout lerobot-port` writes the layout of LeRobot's own DROID port
    (examples/port_datasets/port_droid.py): robot_type Franka at 15 fps, 8-D state and action (7 joints + gripper),
    DROID's sub-features; the default stays the spec's layout."""
    from conftest import write_droid_fixture
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from cosmos3_robot.cli import main

    folder, arrays, _ = write_droid_fixture(tmp_path / "droid", T=5)
    assert main(["convert-droid", str(tmp_path / "droid"), "--out", str(tmp_path / "port"),
                 "--layout", "lerobot-port"]) == 0
    ds = LeRobotDataset("local/droid", root=tmp_path / "port")
    assert ds.meta.robot_type == "Franka" and ds.meta.fps == 15 and len(ds) == 5
    f = ds.meta.features
    assert tuple(f["observation.state"]["shape"]) == (8,) and tuple(f["action"]["shape"]) == (8,)
    assert f["action"]["names"] == {"axes": [f"joint_{i}" for i in range(7)] + ["gripper"]}
    assert {"observation.state.cartesian_position", "action.joint_velocity", "action.original", "is_first",
            "camera_extrinsics.exterior_1_left", "observation.images.wrist_left"} <= set(f)
    item = ds[4]
    np.testing.assert_allclose(item["action"].numpy(), np.r_[arrays["action/joint_position"][4],
                                                            arrays["action/gripper_position"][4]], rtol=1e-6)
    np.testing.assert_allclose(item["observation.state"].numpy()[:7], arrays["observation/robot_state/joint_positions"][4],
                               rtol=1e-6)
    assert bool(item["is_last"]) and float(item["reward"]) == 1.0 and tuple(item["observation.images.wrist_left"].shape) == (3, 180, 320)
    assert main(["convert-droid", str(tmp_path / "droid"), "--out", str(tmp_path / "port"),
                 "--layout", "lerobot-port"]) == 2  # never over an existing dataset
