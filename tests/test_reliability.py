"""Bad input is refused before any long work, and nothing finished is overwritten (issue: reliability)."""

import hashlib
import shutil
import time

import numpy as np
import pytest

from cosmos3_robot.cli import main
from cosmos3_robot.embodiments import ActionError, load_spec, validate_action
from cosmos3_robot.tasks.pusht import PushTRealEnv


def digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_train_refuses_to_overwrite_a_finished_checkpoint(tiny_checkpoint, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    before = digest(ckpt)
    assert main(["train", "--dataset", str(tmp_path / "no-data"), "--out", str(ckpt), "--preset", "tiny"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert digest(ckpt) == before  # byte-identical
    assert main(["train-dynamics", "--init", str(tiny_checkpoint), "--dataset", str(tmp_path), "--out", str(ckpt)]) == 2
    assert digest(ckpt) == before


@pytest.mark.parametrize("args, message", [
    (["--policies", "expert,genius"], "unknown PushT policy 'genius'"),
    (["--episodes", "0"], "--episodes 0"),
    (["--max-steps", "0"], "--max-steps 0"),
    (["--policies", " , "], "--policies is empty"),
])
def test_eval_refuses_bad_arguments_at_once(args, message, tmp_path, capsys):
    t0 = time.perf_counter()
    assert main(["eval", "--real", "--out", str(tmp_path / "out"), *args]) == 2
    assert time.perf_counter() - t0 < 5
    assert message in capsys.readouterr().err


def test_eval_refuses_an_unwritable_out_at_once(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    t0 = time.perf_counter()
    assert main(["eval", "--real", "--episodes", "50", "--out", str(blocker / "out")]) == 2
    assert time.perf_counter() - t0 < 5
    assert "not a writable directory" in capsys.readouterr().err


def test_collect_validates_counts_and_appends_to_an_empty_directory(tmp_path, capsys):
    assert main(["collect", "--episodes", "-3", "--out", str(tmp_path / "d")]) == 2
    assert main(["collect", "--max-steps", "0", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["collect", "--episodes", "1", "--max-steps", "3", "--policy", "random", "--out", str(empty)]) == 0
    assert (empty / "meta" / "info.json").is_file()
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    assert main(["collect", "--episodes", "1", "--max-steps", "3", "--out", str(stray)]) == 2
    assert "not a LeRobot dataset" in capsys.readouterr().err and (stray / "notes.txt").read_text() == "mine"


def test_real_pusht_refuses_a_step_before_reset_and_a_nan_state():
    env = PushTRealEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([100.0, 100.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        env.reset(options={"state": np.array([1.0, 2.0, np.nan, 4.0, 0.0])})


def test_an_empty_chunk_is_an_action_error():
    with pytest.raises(ActionError, match="empty chunk"):
        validate_action(load_spec("pusht"), np.zeros((0, 2)))


def _registered_env_ids() -> list[str]:
    """Every task's real simulator and the learned PushT one (the other learned ones have their own tests)."""
    from cosmos3_robot.tasks import REGISTRY

    return ["cosmos3_robot/PushT-v0"] + [t.real_id for t in REGISTRY.values()]


@pytest.mark.parametrize("env_id", _registered_env_ids())
def test_every_registered_env_passes_the_env_checker_through_gym_make(env_id):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id)  # with env.spec set: ALOHA's unseeded reset after a seeded one once differed
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

ACTIONS = st.one_of(  # dtypes, shapes (chunks, empty, scalars), NaN, inf, huge values, strings
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    hnp.arrays(np.float64, st.just((2,)), elements=st.floats(allow_nan=True, allow_infinity=True)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
    st.text(max_size=3),
)


def _env_cases():
    from cosmos3_robot.sim import LearnedEnv

    learned = LearnedEnv(checkpoint="pusht_small", start="cosmos3_robot/PushTReal-v0")
    learned.reset(seed=0)
    real = PushTRealEnv()
    real.reset(seed=0)
    return {"learned": learned, "real": real}


ENVS = {}


@pytest.mark.parametrize("which", ["learned", "real"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=ACTIONS)
def test_any_action_is_refused_with_an_action_error_or_clipped_and_reported(which, action):
    if not ENVS:
        ENVS.update(_env_cases())
    env = ENVS[which]
    try:
        checked = validate_action(env.embodiment, action, allow_chunk=(which == "learned"), report={})
    except ActionError:
        with pytest.raises(ActionError):
            env.step(action)
        return
    obs, reward, terminated, truncated, info = env.step(action)
    a32 = np.asarray(action, float).astype(np.float32)  # limits apply to the float32 action the env runs
    expected = int(np.sum((a32 < 0) | (a32 > 512)))
    assert info["action_clipped"] == expected and np.all((0 <= checked) & (checked <= 512))
    if terminated or truncated:
        env.reset(seed=0)


def test_an_unwritable_rrd_is_refused_before_the_rollout(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    t0 = time.perf_counter()
    assert main(["rollout", "--sim", "real", "--max-steps", "300", "--rrd", str(blocker / "out.rrd")]) == 2
    assert time.perf_counter() - t0 < 5 and "--rrd" in capsys.readouterr().err


def test_a_damaged_dataset_names_the_missing_file(tmp_path, capsys):
    from cosmos3_robot.datasets import load_episodes

    root = tmp_path / "data"
    assert main(["collect", "--episodes", "2", "--max-steps", "3", "--policy", "random", "--out", str(root)]) == 0
    video = next((root / "videos").rglob("*.mp4"))
    video.unlink()
    with pytest.raises(FileNotFoundError, match=f"{video.relative_to(root)} is missing"):
        load_episodes(root)
    assert main(["view", str(root), "--episode", "0", "--rrd", str(tmp_path / "x.rrd")]) == 2
    assert "is damaged" in capsys.readouterr().err


FRANKA_FRAMES = """
import gc, sys, numpy as np
from cosmos3_robot.tasks import make_real_env
drop = sys.argv[1] == "drop"
if drop:
    aloha = make_real_env("aloha")
    aloha.reset(seed=0)
franka = make_real_env("droid")
franka.reset(seed=3)
if drop:  # dropped without close(), then garbage-collected, while the Franka scene lives
    del aloha
    gc.collect()
obs, _ = franka.reset(seed=3)
if drop:  # and again with both remade
    franka.close()
    del franka
    gc.collect()
    franka = make_real_env("droid")
    aloha = make_real_env("aloha")
    aloha.reset(seed=1)
    del aloha
    gc.collect()
again, _ = franka.reset(seed=3)
for k in obs:
    assert np.array_equal(obs[k], again[k]), k
np.savez(sys.argv[2], **{k.replace(".", "_"): v for k, v in obs.items() if "images" in k})
"""


def test_dropping_an_aloha_env_leaves_franka_cameras_alone(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"}
    for mode in ("fresh", "drop"):
        subprocess.run([sys.executable, "-c", FRANKA_FRAMES, mode, str(tmp_path / f"{mode}.npz")], env=env, check=True,
                       capture_output=True, timeout=300)
    fresh, dropped = np.load(tmp_path / "fresh.npz"), np.load(tmp_path / "drop.npz")
    assert set(fresh) == set(dropped) and len(fresh) == 3
    for key in fresh:
        np.testing.assert_array_equal(dropped[key], fresh[key], err_msg=key)


def test_eval_keeps_each_finished_policy_when_a_later_one_fails(tiny_checkpoint, tmp_path, monkeypatch):
    import json

    from cosmos3_robot.eval import policy_eval

    real_run = policy_eval.run_learned

    def run_learned(make_policy, name, seeds, make_vec_env, batch=50, **kwargs):
        if name == "random":
            raise RuntimeError("the machine went away")
        return real_run(make_policy, name, seeds, make_vec_env, batch, **kwargs)

    monkeypatch.setattr(policy_eval, "run_learned", run_learned)
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="went away"):
        main(["eval", "--policies", "expert,random", "--episodes", "2", "--max-steps", "3", "--checkpoint",
              str(tiny_checkpoint), "--out", str(out)])
    kept = json.loads((out / "eval_partial.json").read_text())
    assert list(kept["policies"]) == ["expert"] and len(kept["policies"]["expert"]["learned"]["success"]) == 2


def test_a_structured_checkpoint_with_a_bad_task_names_it(tmp_path):
    import json

    from cosmos3_robot.backends import load_backend

    ckpt = tmp_path / "ckpt"
    shutil.copytree(load_backend.__globals__["shipped_checkpoint"]("pusht_small"), ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "task": "cosmos3_robot.tasks.nowhere:Bogus"}))
    with pytest.raises(ValueError, match="cosmos3_robot.tasks.nowhere"):
        load_backend(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**config, "backend": "bogus"}))
    with pytest.raises(ValueError, match="names backend 'bogus'"):
        load_backend(ckpt)


# every command's numeric options, with a value under its least: refused at once, the option named
NUMERIC = [("eval", "--episodes"), ("eval", "--max-steps"), ("eval", "--seed"), ("eval", "--real-workers"),
           ("collect", "--episodes"), ("collect", "--max-steps"), ("collect", "--seed"),
           ("demo", "--episodes"), ("demo", "--max-steps"), ("demo", "--seed"),
           ("rollout", "--max-steps"), ("rollout", "--seed"), ("view", "--episode"),
           ("eval-fidelity", "--episodes"), ("eval-fidelity", "--steps"), ("eval-fidelity", "--starts"),
           ("train", "--steps"), ("train", "--batch-size"), ("train", "--save-every"), ("train", "--context"),
           ("train-dynamics", "--width"), ("train-dynamics", "--epochs"), ("train-dynamics", "--render-batch")]
REQUIRED = {"collect": ["--out", "{tmp}/c"], "view": ["{tmp}"], "train": ["--dataset", "{tmp}", "--out", "{tmp}/t"],
            "train-dynamics": ["--init", "{tmp}", "--dataset", "{tmp}", "--out", "{tmp}/d"],
            "eval": ["--out", "{tmp}/e"], "demo": ["--out", "{tmp}/o", "--rrd", "{tmp}/o.rrd"],
            "rollout": ["--rrd", "{tmp}/r.rrd"]}


@pytest.mark.parametrize("command, option", NUMERIC)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.integers(-10**9, -1))
def test_numeric_options_out_of_range_are_refused_at_once(command, option, value, tmp_path_factory):
    import contextlib
    import io

    tmp = str(tmp_path_factory.getbasetemp())
    args = [command, *[a.format(tmp=tmp) for a in REQUIRED.get(command, [])], option, str(value)]
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = main(args)
    assert code == 2 and f"{option} {value}" in err.getvalue() and time.perf_counter() - t0 < 5, err.getvalue()


def test_the_readme_tour_runs_in_a_fresh_python_without_mujoco_gl():
    """`gym.make("cosmos3_robot/FrankaCube-v0")` in a plain Python on a headless box: the package picks EGL."""
    import os
    import subprocess
    import sys

    code = ("import gymnasium as gym, cosmos3_robot\n"
            "arm = gym.make('cosmos3_robot/FrankaCube-v0')\n"
            "obs, info = arm.reset(seed=0)\n"
            "print(obs['observation.images.wrist_left'].shape)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "(180, 320, 3)" in res.stdout, res.stderr[-2000:]


def test_eval_resumes_from_its_partial_file_and_refuses_a_used_out(tmp_path):
    """A rerun after a kill picks up the policies already on disk (they are not run again: a marked result
    survives), a finished --out is refused without --overwrite, and other arguments do not resume."""
    import json

    from cosmos3_robot.cli import main

    out = tmp_path / "out"
    args = ["eval", "--policies", "expert,random", "--episodes", "2", "--max-steps", "5", "--checkpoint", "pusht_fast",
            "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "eval.json").read_text())
    # as if killed after the first policy: its results on disk (marked), the report not yet written
    seeds = report["seeds"]
    marked = {"learned": {"success": [1.0, 1.0], "return": [123.0, 123.0], "length": [5.0, 5.0]}}
    run_args = {"task": "pusht", "policies": ["expert", "random"], "seeds": seeds, "checkpoint": "pusht_fast",
                "real": False, "real_from": None, "max_steps": 5}
    (out / "eval.json").unlink()
    (out / "eval_partial.json").write_text(json.dumps({"seeds": seeds, "args": run_args, "policies": {"expert": marked}}))
    assert main(args) == 0
    resumed = json.loads((out / "eval.json").read_text())
    assert resumed["policies"]["expert"]["learned"]["return"] == 123.0  # not run again
    assert resumed["policies"]["random"]["learned"] == report["policies"]["random"]["learned"]
    assert main(args) == 2  # finished: refused
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "eval.json").read_text())["policies"]["expert"] == report["policies"]["expert"]
    (out / "eval.json").unlink()
    (out / "eval_partial.json").write_text(json.dumps({"seeds": seeds, "args": {**run_args, "max_steps": 9},
                                                         "policies": {"expert": marked}}))
    assert main(args) == 2  # an unfinished eval of other arguments is not silently mixed in


def test_a_killed_eval_leaves_no_real_simulator_worker_behind(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "cosmos3_robot.cli", "eval", "--policies", "expert,random", "--episodes", "30",
           "--real", "--real-workers", "1", "--checkpoint", "pusht_fast", "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children(pid):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    deadline, kids = time.time() + 120, []
    while time.time() < deadline and not kids:
        kids = children(proc.pid)
        time.sleep(0.2)
    assert kids, "eval started no worker"
    time.sleep(10)  # the worker has imported and run its initializer (a spawned child takes seconds to start)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    alive = kids
    while time.time() < deadline and alive:
        alive = [k for k in kids if os.path.exists(f"/proc/{k}") and "Z" not in open(f"/proc/{k}/stat").read().split()[2]]
        time.sleep(0.2)
    assert not alive, f"workers {alive} outlived the killed eval"


FULL_DISK = """
import errno, sys
import PIL.Image
calls = [0]
save = PIL.Image.Image.save
def full(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] > int(sys.argv[1]):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]) if args else None)
    return save(self, *args, **kwargs)
PIL.Image.Image.save = full
from cosmos3_robot.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_gives_one_line_and_leaves_no_temporary_files(tmp_path):
    """The disk fills while an episode's frames are buffered: one line names the cause and the fix, the
    buffered frames are removed (they would keep the disk full), finished episodes stay, and a rerun completes."""
    import os
    import subprocess
    import sys

    from cosmos3_robot.datasets import read_episode_meta

    out = tmp_path / "ds"
    args = ["collect", "--episodes", "3", "--max-steps", "6", "--policy", "random", "--out", str(out),
            "--video-codec", "h264"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", FULL_DISK, "9", *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the disk is full") and "rerun the same command" in last
    assert "Traceback" not in res.stderr
    assert not (out / "images").exists()
    kept = [m["seed"] for m in read_episode_meta(out)]
    assert kept == [0], kept  # 6 + 1 frames of episode 0 were saved before the disk filled
    assert subprocess.run([sys.executable, "-m", "cosmos3_robot.cli", *args], env=env, capture_output=True,
                          timeout=300).returncode == 0
    assert [m["seed"] for m in read_episode_meta(out)] == [0, 1, 2]


def test_each_unclear_input_gets_one_line_naming_the_field(tmp_path, capsys):
    import json

    import numpy as np

    from cosmos3_robot.cli import main
    from cosmos3_robot.sim import LearnedVectorEnv

    def one_line(argv, *needles):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(n in err for n in needles), err

    base = ["eval", "--policies", "expert,random", "--episodes", "1", "--max-steps", "3", "--checkpoint", "pusht_fast"]
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{not json")
    one_line([*base, "--real-from", str(tmp_path / "list.json"), "--out", str(tmp_path / "a")], "--real-from", "list")
    one_line([*base, "--real-from", str(tmp_path / "bad.json"), "--out", str(tmp_path / "b")], "--real-from", "JSON")
    one_line([*base, "--real", "--real-cameras", "top", "--out", str(tmp_path / "c")], "--real-cameras", "one camera")
    one_line([*base, "--flag-disagreement", "nan", "--out", str(tmp_path / "d")], "--flag-disagreement", "finite")
    one_line(["eval", "--policies", "openpi:127.0.0.1:9,random", "--episodes", "1", "--out", str(tmp_path / "e")],
             "ws://127.0.0.1:9", "no openpi policy server")
    with pytest.raises(ValueError, match="whole number"):
        LearnedVectorEnv(2.7, checkpoint="pusht_fast")
    json.dumps({})  # noqa: keep json imported for the report fixtures above
    np.zeros(1)


def test_corrupt_files_are_named_with_the_fix(tmp_path, capsys):
    import shutil
    import subprocess
    import sys

    from cosmos3_robot.backends import load_backend, shipped_checkpoint
    from cosmos3_robot.datasets import open_dataset
    from cosmos3_robot.model import runtime

    ds = tmp_path / "ds"
    subprocess.run([sys.executable, "-m", "cosmos3_robot.cli", "collect", "--episodes", "1", "--max-steps", "4",
                    "--policy", "random", "--out", str(ds), "--video-codec", "h264"], capture_output=True, timeout=300, check=True)
    for pattern in ("data/*/*.parquet", "videos/*/*/*.mp4"):
        broken = tmp_path / "broken"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(ds, broken)
        victim = next(broken.glob(pattern))
        victim.write_bytes(b"\x00garbage" * 64)
        with pytest.raises(ValueError, match=r"is damaged: .*cannot be read.*restore it from a copy"):
            open_dataset(broken)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(shipped_checkpoint("pusht_tower"), ckpt)  # its graphs are current (test_runtime checks)
    for graph in (ckpt / "onnx").glob("*.onnx"):
        graph.write_bytes(b"not an onnx graph")
    import numpy as np

    from cosmos3_robot.sim import LearnedEnv

    with runtime.cache_at(tmp_path / "cache"):
        env = LearnedEnv(load_backend(ckpt, runtime="onnxruntime"), "cosmos3_robot/PushTReal-v0")
        with pytest.raises(ValueError, match=r"ONNX graph .* cannot be loaded.*delete it"):
            env.reset(seed=0)
            env.step(np.array([100.0, 100.0]))
