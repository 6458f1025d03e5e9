"""LeRobot's env plugin: `lerobot-eval --env.type=cosmos3_robot` runs a LeRobot policy in the learned
simulator through LeRobot's own CLI, and the plugin env speaks LeRobot's env conventions (keys, features,
`call`s) while stepping exactly as the project's own vector env."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lerobot.envs.factory import make_env
from lerobot.envs.utils import env_to_policy_features, preprocess_observation

from cosmos3_robot.backends import load_backend
from cosmos3_robot.lerobot_plugin import Cosmos3RobotEnv
from cosmos3_robot.sim import LearnedVectorEnv

START = "cosmos3_robot/PushTReal-v0"


def test_lerobot_eval_cli_runs_a_lerobot_policy_in_the_learned_simulator(lerobot_policy_dir, tmp_path):
    out = tmp_path / "eval"
    cmd = [str(Path(sys.executable).parent / "lerobot-eval"), f"--policy.path={lerobot_policy_dir}",
           "--env.type=cosmos3_robot", "--env.episode_length=8", "--eval.n_episodes=2", "--eval.batch_size=2",
           "--policy.device=cpu", f"--output_dir={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    overall = json.loads((out / "eval_info.json").read_text())["overall"]
    assert overall["n_episodes"] == 2 and 0.0 <= overall["pc_success"] <= 100.0
    assert np.isfinite(overall["avg_sum_reward"]) and overall["avg_sum_reward"] >= 0.0
    videos = [Path(p) for p in overall["video_paths"]]
    assert len(videos) == 2 and all(p.is_file() and p.stat().st_size > 0 for p in videos)
    assert "does not have 'task_description'" not in res.stderr


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_a_policy_trained_on_our_pusht_data_runs_in_lerobots_own_pusht_env(lerobot_policy_dir, tmp_path):
    """lerobot/pusht's keys: the ACT that lerobot-train fit on data `collect` wrote runs in LeRobot's own
    `pusht` env type (gym-pusht at 96x96) with no rename map. (Sync envs: LeRobot's async ones start
    forkserver children in which gym-pusht's ids are not registered.)"""
    out = tmp_path / "eval"
    cmd = [str(Path(sys.executable).parent / "lerobot-eval"), f"--policy.path={lerobot_policy_dir}",
           "--env.type=pusht", "--env.observation_height=96", "--env.observation_width=96", "--env.episode_length=8",
           "--eval.n_episodes=2", "--eval.batch_size=2", "--eval.use_async_envs=false", "--policy.device=cpu",
           f"--output_dir={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    overall = json.loads((out / "eval_info.json").read_text())["overall"]
    assert overall["n_episodes"] == 2 and 0.0 <= overall["pc_success"] <= 100.0


def test_plugin_env_speaks_lerobot_conventions_and_steps_as_the_native_env():
    cfg = Cosmos3RobotEnv(checkpoint="pusht_fast", episode_length=5)
    assert cfg.type == "cosmos3_robot" and cfg.task == "pusht" and cfg.fps == 10
    features = env_to_policy_features(cfg)
    assert features["observation.image"].shape == (3, 96, 96) and features["observation.state"].shape == (2,)
    venv = make_env(cfg, n_envs=3)["cosmos3_robot"][0]
    assert venv.call("_max_episode_steps") == (5,) * 3 and venv.unwrapped.metadata["render_fps"] == 10
    assert venv.call("task_description") == venv.get_attr("task") and venv.call("task")[0]
    obs, _ = venv.reset(seed=[3, 4, 5])
    assert venv.observation_space.contains(obs)
    batch = preprocess_observation(obs)
    assert set(batch) == {"observation.image", "observation.state"}
    assert tuple(batch["observation.image"].shape) == (3, 3, 96, 96)
    native = LearnedVectorEnv(3, load_backend("pusht_fast"), START, max_episode_steps=5)
    ref, _ = native.reset(seed=[3, 4, 5])
    actions = np.random.default_rng(0).uniform(0, 512, (4, 3, 2))
    for a in actions:
        np.testing.assert_array_equal(obs["pixels"], ref["observation.image"])
        np.testing.assert_array_equal(obs["agent_pos"], ref["observation.state"])
        obs, reward, *_ = venv.step(a)
        ref, ref_reward, *_ = native.step(a)
        np.testing.assert_array_equal(reward, ref_reward)
    frames = venv.call("render")
    assert len(frames) == 3 and frames[0].shape == (96, 96, 3)


def test_plugin_refuses_a_task_without_a_learned_simulator(task_without_learned_sim):
    with pytest.raises(ValueError, match=r"--env.task='bare_scene'.*choose one of \[.*'aloha_transfer_cube'"):
        Cosmos3RobotEnv(task=task_without_learned_sim)
    with pytest.raises(ValueError, match="episode_length"):
        Cosmos3RobotEnv(episode_length=0)
