"""A SIGKILL at any instant of `cosmos3-robot collect` loses at most the episode in progress: the finished
ones read back with LeRobotDataset, and rerunning the same command completes the dataset, with no
duplicates and no stray files."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cosmos3_robot.datasets import read_episode_meta, recover_dataset

EPISODES = 3
KILLS = 20


def collect_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "cosmos3_robot.cli", "collect", "--episodes", str(EPISODES), "--max-steps", "10",
            "--policy", "random", "--out", str(out)]


def env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"}


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def read_back(root: Path) -> int:
    """Finished episodes, each read through lerobot's own LeRobotDataset (its last frame decoded)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    done = read_episode_meta(root)
    if not done:
        return 0
    ds = LeRobotDataset("local/cosmos3", root=root)
    assert ds.meta.total_episodes == len(done)
    for ep in range(ds.meta.total_episodes):
        last = int(ds.meta.episodes[ep]["dataset_to_index"]) - 1
        assert ds[last]["episode_index"].item() == ep
    return len(done)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its timeline (when the dataset appears, when it ends) and its files."""
    out = tmp_path_factory.mktemp("ref") / "data"
    t0 = time.perf_counter()
    proc = subprocess.Popen(collect_cmd(out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    while proc.poll() is None:
        if first is None and out.exists():
            first = time.perf_counter() - t0
        time.sleep(0.01)
    assert proc.returncode == 0
    return first, time.perf_counter() - t0, files(out)


def test_sigkill_at_any_instant_keeps_finished_episodes_and_resumes(reference, tmp_path):
    first, total, ref_files = reference
    outcomes, recoveries = [], []
    for k in range(KILLS):  # evenly spaced over the recording, from the dataset's creation to the run's end
        out = tmp_path / f"kill{k}"
        at = first + (total - first) * (k + 0.5) / KILLS
        proc = subprocess.Popen(collect_cmd(out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recoveries.append(recover_dataset(out) if out.exists() else None)  # what a resume does first
        finished = read_back(out) if out.exists() else 0
        outcomes.append(finished)
        res = subprocess.run(collect_cmd(out), env=env(), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        meta = read_episode_meta(out)
        assert [m["seed"] for m in meta] == list(range(EPISODES)), (k, meta)  # all three, no duplicates
        assert read_back(out) == EPISODES
        assert files(out) == ref_files, (k, sorted(set(files(out)) ^ set(ref_files)))  # no stray files
    # the kills landed at different stages: before the first episode was saved and after later ones
    assert min(outcomes) == 0 and max(outcomes) >= 2, outcomes
    assert any(r is not None for r in recoveries), recoveries
    print("finished episodes at each kill:", outcomes, "recoveries:", recoveries)
