"""ONNX Runtime for structured backends: the exported tower sampler and renderer match eager PyTorch, a
batch matches its rows run alone, graphs are cached by fingerprint, the shipped checkpoints carry current
graphs, and both runtimes pass the env through the same rollouts."""

import numpy as np
import pytest
import torch

from cosmos3_robot.backends import load_backend
from cosmos3_robot.backends.structured import StructuredBackend, export_graphs
from cosmos3_robot.model import runtime
from cosmos3_robot.model.entity_tower import sampler
from cosmos3_robot.sim import LearnedEnv

START = "cosmos3_robot/PushTReal-v0"


def tiny_world():
    from conftest import tiny_pusht_world
    from cosmos3_robot.tasks.pusht.structured import tower_config

    world, spec = tiny_pusht_world(lambda spec: tower_config(spec, dim=16, layers=1, ffn_dim=16, head_width=16,
                                                             samples=3))
    torch.nn.init.constant_(world.dynamics.gate.bias, 5.0)  # every entity moves
    return world, spec


def inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    now = [torch.rand(n, 2, generator=g) * 512, torch.cat([torch.rand(n, 2, generator=g) * 512,
                                                           torch.rand(n, 1, generator=g) * 6 - 3], -1)]
    prev = [x + torch.randn(x.shape, generator=g) for x in now]
    action = torch.rand(n, 2, generator=g) * 512
    return now, prev, action, action + 3, torch.randn(n, 3, 2, 3, generator=g)


@pytest.mark.parametrize("n", [1, 20])  # 20: past runtime.SPLIT_BATCH, the multi-threaded session
def test_onnx_sampler_matches_eager_and_rows_match_alone(tmp_path, n):
    world, _ = tiny_world()
    with runtime.cache_at(tmp_path):
        fast = sampler(world.dynamics, "onnxruntime")
    eager = sampler(world.dynamics, "torch")
    args = inputs(n)
    (a_next, a_d), (b_next, b_d) = eager(*args), fast(*args)
    for x, y in zip(a_next, b_next):
        torch.testing.assert_close(y, x, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(b_d, a_d, atol=1e-5, rtol=1e-4)
    rows = [fast([x[i : i + 1] for x in args[0]], [x[i : i + 1] for x in args[1]], args[2][i : i + 1],
                 args[3][i : i + 1], args[4][i : i + 1]) for i in range(n)]
    for e in range(2):
        # a row alone and in a batch may differ in the last float32 bit (3e-5 at 300 units on an AMD EPYC)
        torch.testing.assert_close(torch.cat([r[0][e] for r in rows]), b_next[e], atol=1e-5, rtol=2e-7)


def test_onnx_renderer_matches_eager_within_one_grey_level(tmp_path):
    world, _ = tiny_world()
    state = torch.rand(24, 6) * 2 - 1
    with runtime.cache_at(tmp_path):
        fast = world.renderer.drawer("onnxruntime")
    a, b = world.renderer.draw(state), fast(state)
    assert a.shape == b.shape == (24, 96, 96, 3) and b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    np.testing.assert_array_equal(np.concatenate([fast(state[i : i + 1]) for i in range(24)]), b)


def test_graphs_are_cached_by_weights(tmp_path):
    world, _ = tiny_world()
    with runtime.cache_at(tmp_path):
        first = runtime.OnnxFunction(world.renderer, (torch.zeros(2, 6),), "r")
        stamp = first.path.stat().st_mtime_ns
        again = runtime.OnnxFunction(world.renderer, (torch.zeros(2, 6),), "r")
        assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # found, not re-exported
        with torch.no_grad():
            world.renderer.head[0].bias.add_(1.0)
        changed = runtime.OnnxFunction(world.renderer, (torch.zeros(2, 6),), "r")
    assert changed.path != first.path and len(list(tmp_path.glob("*.onnx"))) == 2


def test_unknown_runtime_is_refused(tmp_path):
    world, spec = tiny_world()
    with pytest.raises(ValueError, match="runtime='tensorrt'"):
        StructuredBackend(world, spec, runtime="tensorrt")
    with pytest.raises(ValueError, match="bfloat16"):
        StructuredBackend(world, spec, runtime="onnxruntime", precision="bfloat16")


@pytest.mark.parametrize("name", ["pusht_tower", "pusht_policy", "pusht_fast", "franka_cube"])
def test_shipped_checkpoints_carry_current_graphs(tmp_path, name):
    """Loading a shipped checkpoint under ONNX Runtime exports nothing: its onnx/ folder matches the weights
    and code (after editing the tower or renderer code, refresh them with `cosmos3-robot export-onnx NAME`)."""
    with runtime.cache_at(tmp_path):
        backend = load_backend(name, runtime="onnxruntime")
        backend.prepare()
    assert backend.runtime == "onnxruntime"
    assert list(tmp_path.glob("*.onnx")) == [], "stale shipped graphs: run cosmos3-robot export-onnx " + name


def test_export_graphs_writes_the_checkpoint_folder_and_both_runtimes_roll_out_alike(tmp_path):
    from conftest import save_structured

    world, spec = tiny_world()
    path = save_structured(world, spec, tmp_path / "ckpt")
    files = export_graphs(path)
    assert sorted(f.name.split("-")[0] for f in files) == ["entity_tower", "state_renderer"]
    assert all(f.parent == path / "onnx" and f.is_file() for f in files)
    outs = {}
    for rt in ("torch", "onnxruntime"):
        env = LearnedEnv(load_backend(path, runtime=rt), START, max_episode_steps=8)
        obs, _ = env.reset(seed=4)
        rng = np.random.default_rng(0)
        states = []
        for _ in range(6):
            obs, *_ = env.step(rng.uniform(0, 512, 2))
            states.append(obs["observation.state"])
        outs[rt] = np.array(states)
    np.testing.assert_allclose(outs["onnxruntime"], outs["torch"], atol=1e-3)
