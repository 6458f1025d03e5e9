import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos3_robot.datasets import LeRobotRecorder
from cosmos3_robot.embodiments import Normalizer, load_spec
from cosmos3_robot.eval import rollout
from cosmos3_robot.eval.policy_eval import evaluate, write_report
from cosmos3_robot.eval.rollout import collect
from cosmos3_robot.policies import LeRobotPolicy, Policy, WorldModelPolicy
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy

START = "cosmos3_robot/PushTReal-v0"


@pytest.fixture(scope="module")
def lerobot_policy_dir(tmp_path_factory):
    """A tiny ACT trained offline for a few steps by lerobot's own `lerobot-train` on our data."""
    root = tmp_path_factory.mktemp("act")
    env = PushTRealEnv(max_episode_steps=12)
    collect(env, make_pusht_policy("expert"), 2, LeRobotRecorder(root / "data", env.embodiment), progress=False)
    cmd = [str(Path(sys.executable).parent / "lerobot-train"), "--dataset.repo_id=local/cosmos3",
           f"--dataset.root={root / 'data'}", "--policy.type=act", "--policy.pretrained_backbone_weights=null",
           "--policy.dim_model=32", "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1",
           "--policy.n_decoder_layers=1", "--policy.chunk_size=4", "--policy.n_action_steps=4",
           "--policy.use_vae=false", "--policy.push_to_hub=false", "--policy.device=cpu", "--steps=2",
           "--batch_size=2", "--save_freq=2", "--num_workers=0", "--wandb.enable=false", f"--output_dir={root / 'out'}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"})
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "out" / "checkpoints" / "last" / "pretrained_model"


def test_lerobot_policy_runs_in_real_and_learned_env(lerobot_policy_dir, tiny_checkpoint):
    policy = LeRobotPolicy(lerobot_policy_dir, task=load_spec("pusht").task)
    assert isinstance(policy, Policy)
    for env in (PushTRealEnv(max_episode_steps=6), LearnedEnv(checkpoint=tiny_checkpoint, start=START, max_episode_steps=6)):
        actions = []
        rollout(env, policy, seed=0, on_step=lambda o, a, r, t, i: actions.append(a))
        assert len(actions) == 6 and all(a.shape == (2,) and np.isfinite(a).all() for a in actions)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        LeRobotPolicy(lerobot_policy_dir.parent)
    from cosmos3_robot.tasks import make_policy  # `cosmos3-robot eval --policies lerobot:<dir>`

    named = make_policy("pusht", f"lerobot:{lerobot_policy_dir}")
    assert isinstance(named, LeRobotPolicy) and named.name == f"lerobot:{lerobot_policy_dir}"


def test_world_model_policy_head(tiny_checkpoint):
    policy = WorldModelPolicy(tiny_checkpoint, chunk=3, seed=0)
    obs, _ = PushTRealEnv().reset(seed=0)
    first = [policy.select_action(obs) for _ in range(4)]  # one chunk of 3, then a new chunk
    assert policy.imagined.shape[0] == 3
    policy.reset(0)
    again = [policy.select_action(obs) for _ in range(4)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))  # seeded
    assert all((0 <= a).all() and (a <= 512).all() for a in first)


def test_eval_is_deterministic_and_writes_reports(tiny_checkpoint, tmp_path):
    policies = ["expert", "random"]
    kw = dict(make_policy=lambda name, seed: make_pusht_policy(name, seed=seed), seeds=[0, 1],
              make_vec_env=lambda n: LearnedVectorEnv(n, checkpoint=tiny_checkpoint, start=START, max_episode_steps=8),
              real_env=PushTRealEnv(max_episode_steps=8), progress=False, n_boot=50)
    a = evaluate(policies, **kw)
    b = evaluate(policies, **kw)
    assert json.dumps(a) == json.dumps(b)  # (json: NaN metrics compare equal)
    for name in policies:
        assert set(a["policies"][name]) == {"learned", "real"}
        assert len(a["policies"][name]["real"]["episodes"]) == 2
    assert set(a["metrics"]) == {"pearson", "spearman", "mmrv"}
    paths = write_report(a, tmp_path)
    assert "| expert |" in paths["markdown"].read_text() and paths["plot"].stat().st_size > 1000
