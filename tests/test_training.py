import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cosmos3_robot.datasets import LeRobotRecorder, dataset_normalizers, load_episodes
from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.eval.rollout import collect
from cosmos3_robot.model import WorldModel
from cosmos3_robot.train.world_model import STATE_FILE, LatentData, TrainConfig, _Objective, train
from cosmos3_robot.sim import LearnedEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy

START = "cosmos3_robot/PushTReal-v0"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "pusht"
    env = PushTRealEnv(max_episode_steps=15)
    collect(env, make_pusht_policy("expert-noise0.2"), 3, LeRobotRecorder(root, env.embodiment), progress=False)
    return root


def config(dataset, out, **kw):
    base = dict(dataset=str(dataset), out=str(out), preset="tiny", tokenizer_steps=30, tokenizer_batch=8, steps=40,
                judge_steps=10, batch_size=8, save_every=10, progress=False)
    return TrainConfig(**{**base, **kw})


def test_train_is_seeded_and_loss_falls(dataset, tmp_path):
    model = train(config(dataset, tmp_path / "a", steps=80))
    log = [json.loads(line) for line in (tmp_path / "a" / "losses.jsonl").read_text().splitlines()]
    wm = [r["loss"] for r in log if r["stage"] == "world_model"]
    assert sum(wm[-3:]) / 3 < sum(wm[:3]) / 3
    assert not (tmp_path / "a" / STATE_FILE).exists()  # finished runs leave a plain checkpoint
    again = train(config(dataset, tmp_path / "b", steps=80))
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k
    env = LearnedEnv(checkpoint=tmp_path / "a", start=START)  # the checkpoint drives the learned env
    obs, _ = env.reset(seed=0)
    assert env.step(obs["observation.state"])[0]["observation.image"].shape == (96, 96, 3)


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_training_resumes_after_a_kill(dataset, tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from cosmos3_robot.train.world_model import TrainConfig, train; "
            f"train(TrainConfig(dataset={str(dataset)!r}, out={str(out)!r}, preset='tiny', tokenizer_steps=30, "
            "tokenizer_batch=8, steps=400, judge_steps=10, batch_size=8, save_every=10, progress=False))")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 180
    while time.time() < deadline:
        if (out / STATE_FILE).is_file():
            st = torch.load(out / STATE_FILE, weights_only=False)
            if st["stage"] == "world_model" and st["step"] >= 20:
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    st = torch.load(out / STATE_FILE, weights_only=False)
    killed_at = st["step"]
    assert st["stage"] == "world_model" and killed_at >= 20
    train(config(dataset, out, steps=killed_at + 20))
    log = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if r["stage"] == "world_model"]
    assert steps.count(0) == 1 and max(steps) >= killed_at  # resumed, not restarted
    WorldModel.from_pretrained(out)


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_ddp_two_cpu_processes(dataset, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    code = tmp_path / "ddp.py"
    code.write_text(
        "from cosmos3_robot.train.world_model import TrainConfig, train\n"
        f"train(TrainConfig(dataset={str(dataset)!r}, out={str(tmp_path / 'ddp')!r}, preset='tiny', tokenizer_steps=10,"
        " tokenizer_batch=8, steps=6, judge_steps=2, batch_size=4, save_every=3, progress=False))\n"
    )
    res = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", str(code)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "ddp" / "losses.jsonl").read_text().splitlines()]
    done = [r for r in log if r["stage"] == "done"]
    assert done and done[0]["world_size"] == 2
    shutil.rmtree(tmp_path / "ddp")


def test_judge_on_imagined_frames_and_sampler_settings_reach_the_env(dataset, tmp_path):
    base = train(config(dataset, tmp_path / "base", steps=20, judge_steps=0))
    objective = _Objective(base, judge_imagined=1.0, sample_noise=0.0)
    spec = load_spec("pusht")
    data = LatentData(base, load_episodes(dataset), spec, dataset_normalizers(dataset, spec), 2, "observation.image")
    batch = data.batch(4, torch.Generator().manual_seed(0))
    imagined = objective.imagined_next(batch, torch.Generator().manual_seed(1))
    assert imagined.shape == batch["fut_latents"][:, 0].shape
    assert not torch.allclose(imagined, batch["fut_latents"][:, 0])  # the model's prediction, not the real frame
    # judge stage on imagined frames continues from a checkpoint; the sampler setting is saved with it
    tuned = train(config(dataset, tmp_path / "tuned", init=str(tmp_path / "base"), steps=0, judge_steps=5,
                         judge_imagined=0.5, sample_noise=0.5))
    assert tuned.metadata["sample_noise"] == 0.5
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed and all(k.startswith(("judge_head", "vision_in")) for k in changed), changed
    assert LearnedEnv(checkpoint=tmp_path / "tuned").backend.sample_noise == 0.5


def test_switching_to_x0_frames_on_init_resets_the_head_and_is_saved(dataset, tmp_path):
    base = train(config(dataset, tmp_path / "base", steps=20, judge_steps=0))
    assert base.cfg.frame_prediction == "velocity" and base.frame_out.weight.abs().sum() > 0
    switched = train(config(dataset, tmp_path / "x0", init=str(tmp_path / "base"), steps=0, judge_steps=0,
                            frame_prediction="x0", time_shift=3.0))
    assert switched.frame_out.weight.abs().sum() == 0  # the velocity head's weights mean nothing for x0
    reloaded = WorldModel.from_pretrained(tmp_path / "x0")
    assert reloaded.cfg.frame_prediction == "x0" and reloaded.cfg.time_shift == 3.0
    # the new loss options train from scratch too
    fresh = train(config(dataset, tmp_path / "fresh", steps=20, judge_steps=0, frame_prediction="x0",
                         motion_weight=4.0, forward_share=0.6, tokenizer_detail_weight=10.0, frame_t1_share=0.5,
                         sample_steps=1))
    log = [json.loads(line) for line in (tmp_path / "fresh" / "losses.jsonl").read_text().splitlines()]
    assert fresh.cfg.frame_prediction == "x0" and fresh.cfg.sample_steps == 1 and all(r["loss"] == r["loss"] for r in log if "loss" in r)


def test_init_with_a_conv_frame_head_keeps_the_backbone_and_starts_the_head_fresh(dataset, tmp_path):
    base = train(config(dataset, tmp_path / "base", steps=10, judge_steps=0))
    conv = train(config(dataset, tmp_path / "conv", init=str(tmp_path / "base"), steps=0, judge_steps=0,
                        frame_head="conv", frame_prediction="x0"))
    assert conv.frame_conv is not None and conv.frame_conv[-1].weight.abs().sum() == 0
    base_sd, conv_sd = base.state_dict(), conv.state_dict()
    kept = [k for k in base_sd if not k.startswith("frame_out")]
    assert kept and all(torch.equal(base_sd[k], conv_sd[k]) for k in kept)
    reloaded = WorldModel.from_pretrained(tmp_path / "conv")
    assert reloaded.cfg.frame_head == "conv"
    trained = train(config(dataset, tmp_path / "conv2", init=str(tmp_path / "conv"), steps=10, judge_steps=0))
    assert trained.frame_conv[-1].weight.abs().sum() > 0  # the new head trains


def test_perceived_state_rides_in_the_state_token_and_the_env_starts_from_it(dataset, tmp_path):
    from cosmos3_robot.embodiments.perception import perceive

    model = train(config(dataset, tmp_path / "ps", steps=10, judge_steps=0, frame_head="conv",
                         frame_prediction="x0", perceive_state="pusht_block_pose", conv_head_state=6,
                         state_geometry="point:0,pose:2", residual_state=True, render_steps=20))
    assert model.metadata["perceived_state"] == "pusht_block_pose" and model.cfg.conv_head_state == 6
    log = [json.loads(line) for line in (tmp_path / "ps" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["stage"] == "render"] == [0, 10, 19]
    spec, episodes = load_spec("pusht"), load_episodes(dataset)
    data = LatentData(model, episodes, spec, dataset_normalizers(dataset, spec), 2,
                      "observation.image", "pusht_block_pose")
    assert data.state_mask.sum() == 6
    n0 = len(episodes[0]["action"])
    torch.testing.assert_close(data.state[:n0, 2:6],
                               torch.from_numpy(perceive("pusht_block_pose", episodes[0]["frames"]["observation.image"])))
    assert data.state[:, 6:].abs().sum() == 0
    env = LearnedEnv(checkpoint=tmp_path / "ps", start=START)
    obs, _ = env.reset(seed=3)
    first = perceive("pusht_block_pose", obs["observation.image"][None])[0]
    torch.testing.assert_close(env._session.data["state"][0, -1, 2:6], torch.from_numpy(first))
    obs, *_ = env.step(obs["observation.state"])
    assert obs["observation.state"].shape == (2,) and env._session.data["state"][0, -1, 6:].abs().sum() == 0
    with pytest.raises(ValueError, match="needs the camera frames"):
        env.backend.codec.norm_state(obs["observation.state"][None])
    with pytest.raises(ValueError, match="unknown perceived state"):
        train(config(dataset, tmp_path / "bad", perceive_state="nope"))
    with pytest.raises(ValueError, match="render_steps=5 needs a conv frame head"):
        train(config(dataset, tmp_path / "bad2", render_steps=5))


def test_rollout_context_windows_and_own_context(dataset, tmp_path):
    model = train(config(dataset, tmp_path / "m", steps=5, judge_steps=0, frame_prediction="x0", sample_steps=1))
    spec = load_spec("pusht")
    data = LatentData(model, load_episodes(dataset), spec, dataset_normalizers(dataset, spec), 2, spec.cameras[0].key)
    gen = torch.Generator().manual_seed(0)
    b = data.batch(64, gen, history=3)
    # the same draw without history gives the same windows
    plain = data.batch(64, torch.Generator().manual_seed(0))
    torch.testing.assert_close(plain["fut_latents"], b["fut_latents"])
    i = data.valid[torch.randint(len(data.valid), (64,), generator=torch.Generator().manual_seed(0))]
    ok = i - 3 - 1 >= data.start[i]
    assert torch.equal(b["roll_ok"], ok) and ok.any() and (~ok).any()
    torch.testing.assert_close(b["roll_latents"][ok], data.latents[torch.stack([i - 4, i - 3], 1)][ok])
    torch.testing.assert_close(b["roll_actions"][ok], data.action[torch.stack([i - 3, i - 2, i - 1], 1)][ok])
    objective = _Objective(model, sample_noise=0.0, rollout_steps=3, rollout_share=1.0)  # no noise: comparable
    own = objective.own_context(b, torch.Generator().manual_seed(1))
    torch.testing.assert_close(own["ctx_latents"][~ok], b["ctx_latents"][~ok])  # too early: real context kept
    assert not torch.allclose(own["ctx_latents"][ok], b["ctx_latents"][ok])
    # the replaced context is the model's own 3-step rollout from the earlier real context
    k = int(torch.nonzero(ok)[0])
    one = {key: v[k : k + 1] for key, v in b.items()}
    ctx, state = one["roll_latents"], one["roll_state"]
    for j in range(3):
        cache = model.encode_prefix(one["text_ids"], ctx[:, -2:], state[:, -2:], one["domain"])
        out = model.sample(cache, 1, 1, one["action_mask"], one["state_mask"], actions=one["roll_actions"][:, j : j + 1],
                           noise_scale=0.0)
        ctx, state = torch.cat([ctx, out["frames"]], 1), torch.cat([state, out["state"]], 1)
    torch.testing.assert_close(own["ctx_latents"][k : k + 1], ctx[:, -2:], atol=1e-5, rtol=1e-4)
    assert torch.equal(own["fut_latents"], b["fut_latents"])  # the target stays the real next frame
    none = _Objective(model, rollout_steps=3, rollout_share=0.0).own_context(b, torch.Generator().manual_seed(1))
    assert torch.equal(none["ctx_latents"], b["ctx_latents"])
    trained = train(config(dataset, tmp_path / "pf", init=str(tmp_path / "m"), steps=10, judge_steps=0,
                           rollout_steps=2))
    log = [json.loads(line) for line in (tmp_path / "pf" / "losses.jsonl").read_text().splitlines()]
    assert trained.cfg.frame_prediction == "x0" and all(r["loss"] == r["loss"] for r in log if "loss" in r)
