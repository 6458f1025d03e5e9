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
    from cosmos3_robot.model.training import TrainConfig, train
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
