"""Observation features derived from frames for policies trained elsewhere: gym-pusht's keypoints of the T
(`observation.environment_state`, as lerobot/pusht_keypoints), checked against gym-pusht's own `get_keypoints`,
written into a dataset that lerobot's own `lerobot-train` trains a state-based policy on, and fed to that policy in
the real and the learned simulator."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmos3_robot.errors import UserError

KEY = "observation.environment_state"


def test_keypoints_are_gym_pushts_own_and_read_off_the_frame_within_four_units():
    from gym_pusht.envs.pusht import PushTEnv

    from cosmos3_robot.tasks.pusht import PushTRealEnv
    from cosmos3_robot.tasks.pusht.vision import environment_state, t_keypoints

    env = PushTRealEnv()
    rng = np.random.default_rng(0)
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        true = PushTEnv.get_keypoints(env._env._block_shapes).reshape(16)  # gym-pusht's environment_state
        np.testing.assert_allclose(t_keypoints(env.get_state()[2:5]).reshape(16), true, atol=1e-9)
        perceived = environment_state(obs["observation.image"])
        assert perceived.shape == (16,) and perceived.dtype == np.float32
        assert np.abs(perceived - true).max() < 4.0  # the 96x96 frame's pixel is 5.3 units
        pose = np.array([rng.uniform(100, 400), rng.uniform(100, 400), rng.uniform(-np.pi, np.pi)])
        env._env.block.angle, env._env.block.position = pose[2], tuple(pose[:2])
        np.testing.assert_allclose(t_keypoints(pose).reshape(16),
                                   PushTEnv.get_keypoints(env._env._block_shapes).reshape(16), atol=1e-9)


@pytest.fixture(scope="module")
def keypoint_policy(tmp_path_factory):
    """A tiny state-based ACT (no camera input), trained by lerobot's own `lerobot-train` on a derived dataset."""
    from cosmos3_robot.datasets import LeRobotRecorder, open_dataset
    from cosmos3_robot.datasets.derive import derive_features
    from cosmos3_robot.eval.rollout import collect
    from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy
    from cosmos3_robot.tasks.pusht.vision import environment_state

    root = tmp_path_factory.mktemp("keypoints")
    env = PushTRealEnv(max_episode_steps=10)
    collect(env, make_pusht_policy("expert"), 2, LeRobotRecorder(root / "data", env.embodiment), progress=False)
    counts = derive_features([root / "data"], root / "kp", [KEY], progress=False)
    assert counts == {"episodes": 2, "frames": 20}
    src, ds = open_dataset(root / "data"), open_dataset(root / "kp")
    assert KEY in ds.meta.features and "observation.image" not in ds.meta.features
    assert ds.meta.features[KEY]["shape"] in ((16,), [16])
    frame = src[3]["observation.image"].permute(1, 2, 0).numpy()  # lerobot decodes to CHW float in [0, 1]
    expected = environment_state(np.round(frame * 255).astype(np.uint8))
    np.testing.assert_allclose(ds[3][KEY].numpy(), expected, atol=0.5)
    np.testing.assert_array_equal(ds[3]["action"].numpy(), src[3]["action"].numpy())
    with pytest.raises(UserError, match="exists"):
        derive_features([root / "data"], root / "kp", [KEY], progress=False)
    with pytest.raises(UserError, match="no derived feature 'observation.nothing'"):
        derive_features([root / "data"], root / "kp2", ["observation.nothing"], progress=False)
    assert not (root / "kp2").exists() and not (root / "kp2.partial").exists()
    cmd = [str(Path(sys.executable).parent / "lerobot-train"), "--dataset.repo_id=local/cosmos3",
           f"--dataset.root={root / 'kp'}", "--policy.type=act", "--policy.dim_model=32",
           "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
           "--policy.chunk_size=4", "--policy.n_action_steps=4", "--policy.use_vae=false", "--policy.push_to_hub=false",
           "--policy.device=cpu", "--steps=2", "--batch_size=2", "--save_freq=2", "--num_workers=0",
           "--wandb.enable=false", f"--output_dir={root / 'out'}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"})
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "out" / "checkpoints" / "last" / "pretrained_model"


def test_a_keypoint_policy_gets_its_keypoints_from_the_frames_in_both_simulators(keypoint_policy, tiny_checkpoint,
                                                                                 monkeypatch):
    import cosmos3_robot.tasks.pusht  # noqa: F401  (registers the derived feature)
    from cosmos3_robot.embodiments import perception
    from cosmos3_robot.eval import rollout
    from cosmos3_robot.policies import LeRobotPolicy
    from cosmos3_robot.sim import LearnedEnv
    from cosmos3_robot.tasks import make_policy
    from cosmos3_robot.tasks.pusht import PushTRealEnv

    policy = make_policy("pusht", f"lerobot:{keypoint_policy}")
    assert isinstance(policy, LeRobotPolicy) and list(policy.derived) == [KEY]
    seen = []
    fn = perception.OBSERVATION_FEATURES[("pusht", KEY)]
    policy.derived[KEY] = lambda obs: seen.append(fn(obs)) or seen[-1]
    for env in (PushTRealEnv(max_episode_steps=5),
                LearnedEnv(checkpoint=tiny_checkpoint, start="cosmos3_robot/PushTReal-v0", max_episode_steps=5)):
        actions = []
        rollout(env, policy, seed=0, on_step=lambda o, a, r, t, i: actions.append(a))
        assert len(actions) == 5 and all(a.shape == (2,) and np.isfinite(a).all() for a in actions)
    assert len(seen) == 10 and all(s.shape == (16,) for s in seen)
    # without the registered function the policy is refused up front, naming the feature and the fix
    monkeypatch.delitem(perception.OBSERVATION_FEATURES, ("pusht", KEY))
    with pytest.raises(UserError, match="observation.environment_state.*register_observation_feature"):
        make_policy("pusht", f"lerobot:{keypoint_policy}")
