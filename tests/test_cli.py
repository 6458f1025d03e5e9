import subprocess
import sys

import numpy as np
import pytest

from cosmos3_robot.cli import embodiment_rows, main
from cosmos3_robot.embodiments import list_embodiments, load_spec


def test_embodiments_table_lists_every_spec(capsys):
    assert main(["embodiments"]) == 0
    out = capsys.readouterr().out
    for name in list_embodiments():
        spec = load_spec(name)
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert spec.kind in line and f"({spec.action_dims}-D)" in line and spec.cameras[0].name in line


def test_rows_carry_rates_and_chunk():
    rows = {r["name"]: r for r in embodiment_rows()}
    assert rows["droid"]["control_hz"] == "15" and rows["droid"]["chunk"] == "16"
    assert rows["autonomous_vehicle"]["chunk"] == "60"


def test_embodiment_detail(capsys):
    assert main(["embodiments", "droid"]) == 0
    out = capsys.readouterr().out
    assert "joint_position: 8-D, chunk 32" in out and "ee_rotation" in out


def test_unknown_embodiment_exit_code(capsys):
    assert main(["embodiments", "franka"]) == 2
    assert "unknown embodiment 'franka'" in capsys.readouterr().err


def test_console_script_demo_runs(tiny_checkpoint, tmp_path):
    exe = [sys.executable, "-m", "cosmos3_robot.cli", "demo", "--checkpoint", str(tiny_checkpoint), "--max-steps", "4",
           "--episodes", "1", "--rrd", str(tmp_path / "demo.rrd"), "--out", str(tmp_path / "eval")]
    res = subprocess.run(exe, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "final: real success" in res.stdout and "| expert |" in res.stdout and "spearman" in res.stdout
    assert (tmp_path / "demo.rrd").stat().st_size > 0 and (tmp_path / "eval" / "eval.json").is_file()


def test_rollout_and_view_commands(tiny_checkpoint, tmp_path, capsys):
    assert main(["rollout", "--sim", "both", "--checkpoint", str(tiny_checkpoint), "--max-steps", "3",
                 "--rrd", str(tmp_path / "r.rrd")]) == 0
    assert "mean frame PSNR" in capsys.readouterr().out and (tmp_path / "r.rrd").is_file()
    assert main(["collect", "--format", "droid", "--episodes", "1", "--max-steps", "3", "--out",
                 str(tmp_path / "d")]) == 0
    assert main(["view", str(tmp_path / "d"), "--episode", "0", "--rrd", str(tmp_path / "v.rrd")]) == 0
    assert main(["view", str(tmp_path / "d"), "--episode", "5"]) == 2


def test_collect_from_the_learned_simulator_marks_episodes_imagined(tmp_path, capsys, task_without_learned_sim):
    from cosmos3_robot.datasets import list_droid_episodes, open_dataset, read_droid_metadata, read_episode_meta

    out = tmp_path / "imagined"
    assert main(["collect", "--sim", "learned", "--env", "pusht", "--episodes", "2", "--max-steps", "6",
                 "--out", str(out)]) == 0
    assert "imagined" in capsys.readouterr().out
    ds = open_dataset(out)
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == sum(m["length"] for m in read_episode_meta(out))
    meta = read_episode_meta(out)
    assert all(m["imagined"] is True and m["checkpoint"] == "pusht_tower" for m in meta)
    assert all(0.0 <= m["disagreement_mean"] <= m["disagreement_max"] for m in meta)  # the tower's own spread
    real = tmp_path / "real"
    assert main(["collect", "--episodes", "1", "--max-steps", "6", "--out", str(real)]) == 0
    assert "imagined" not in read_episode_meta(real)[0]
    assert main(["collect", "--sim", "learned", "--format", "droid", "--episodes", "1", "--max-steps", "4",
                 "--checkpoint", "pusht_fast", "--out", str(tmp_path / "d")]) == 0
    droid = read_droid_metadata(list_droid_episodes(tmp_path / "d")[0])
    assert droid["imagined"] is True and droid["checkpoint"] == "pusht_fast"
    assert main(["collect", "--sim", "learned", "--env", task_without_learned_sim, "--policy", "random", "--episodes", "1",
                 "--out", str(tmp_path / "a")]) == 2
    assert "no learned simulator" in capsys.readouterr().err


def test_imagined_droid_episodes_read_as_droids_code_reads_them(tmp_path):
    """4: an imagined Franka episode in DROID's layout has every camera's extrinsics (the wrist camera's from the
    imagined arm), says it is imagined in the h5, and DROID's readers return its frames exactly; its right eye is
    a copy of the left, and says so."""
    import h5py
    from conftest import droid_reference_reads

    from cosmos3_robot.datasets import list_droid_episodes, read_droid_episode

    assert main(["collect", "--sim", "learned", "--env", "droid", "--format", "droid", "--episodes", "1",
                 "--max-steps", "6", "--out", str(tmp_path / "d")]) == 0
    folder = list_droid_episodes(tmp_path / "d")[0]
    record, _, views = droid_reference_reads(folder)
    ep = read_droid_episode(folder)
    serials = ep["metadata"]["camera_serials"]
    for name, serial in serials.items():
        np.testing.assert_array_equal(views[serial][0], ep["frames"][name])
        np.testing.assert_array_equal(views[serial][1], ep["frames"][name])  # the marked copy
        assert ep["arrays"][f"observation/camera_extrinsics/{serial}_left"].shape == (6, 6)
    assert ep["metadata"]["cosmos3_right_eye"] == {n: "copy of left" for n in serials}
    wrist = ep["arrays"][f"observation/camera_extrinsics/{serials['wrist_left']}_left"]
    assert np.abs(wrist[-1] - wrist[0]).max() > 1e-4  # follows the imagined arm
    ext = ep["arrays"][f"observation/camera_extrinsics/{serials['exterior_1_left']}_left"]
    assert np.abs(ext - ext[0]).max() == 0 and record["ext1_cam_extrinsics"] == ext[0].tolist()
    with h5py.File(folder / "trajectory.h5") as h5:
        assert h5.attrs["cosmos3_imagined"] == True and h5.attrs["cosmos3_checkpoint"] == "franka_cube"  # noqa: E712


def test_tasks_come_from_the_registry_and_old_names_still_work(capsys):
    """The CLI's task choices are the registry's; an earlier name (droid for franka_cube) works with a
    deprecation line; a task name may be registered once."""
    from cosmos3_robot.cli import build_parser
    from cosmos3_robot.tasks import REGISTRY, TaskInfo, register_task, task_info

    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["eval"]._actions
                   if "--task" in a.option_strings).choices
    assert set(choices) == {t.name for t in REGISTRY.values() if t.learned_id} | {"droid", "aloha"}
    assert task_info("droid", warn=True).name == "franka_cube"
    assert "'droid' is deprecated; use 'franka_cube'" in capsys.readouterr().err
    assert task_info("pusht").embodiment == "pusht" and task_info("franka_cube").embodiment == "droid"
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        task_info("nope")
    with pytest.raises(ValueError, match="registered already"):
        register_task(TaskInfo(name="other", embodiment="droid", real_id="x", real_entry_point="x:y",
                               aliases=("droid",)))


def test_a_task_brings_its_own_commands_and_defaults(monkeypatch, tmp_path, capsys):
    """TaskInfo.commands adds a task's own subcommands; TaskInfo.default_for picks a command's default task;
    `rollout` runs any registered task (here the Franka scene, learned, a few steps)."""
    import dataclasses

    from cosmos3_robot.cli import build_parser
    from cosmos3_robot.tasks import REGISTRY

    sub = build_parser()._subparsers._group_actions[0].choices
    owners = {t.name for t in REGISTRY.values() if t.commands}
    assert "train-policy" in sub and owners  # a registered task's command
    first = next(iter(REGISTRY))
    monkeypatch.setitem(REGISTRY, first, dataclasses.replace(REGISTRY[first], commands=None))
    sub = build_parser()._subparsers._group_actions[0].choices
    assert "train-policy" not in sub or any(REGISTRY[n].commands for n in owners if n != first)
    other = next(n for n in REGISTRY if n != first)
    monkeypatch.setitem(REGISTRY, other, dataclasses.replace(REGISTRY[other], default_for=("rollout",)))
    rollout = next(a for a in build_parser()._subparsers._group_actions[0].choices["rollout"]._actions
                   if "--env" in a.option_strings)
    assert rollout.default == other and rollout.default != first
    assert main(["rollout", "--task", "franka_cube", "--sim", "learned", "--max-steps", "4",
                 "--rrd", str(tmp_path / "f.rrd")]) == 0
    assert "learned success" in capsys.readouterr().out and (tmp_path / "f.rrd").stat().st_size > 0
