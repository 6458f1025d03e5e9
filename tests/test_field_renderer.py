import json

import numpy as np
import pytest
import torch

from cosmos3_robot.embodiments.perception import perceive
from cosmos3_robot.embodiments.pusht_vision import estimate_block_pose, features_to_pose
from cosmos3_robot.envs import WorldModelEnv, WorldModelVectorEnv
from cosmos3_robot.envs.real import PushTRealEnv, random_pusht_frames
from cosmos3_robot.model import WorldModel
from cosmos3_robot.model.field_renderer import FieldRenderer, fit_field_renderer
from cosmos3_robot.model.pose_dynamics import add_pose_dynamics


def test_grid_matches_the_image_axes_and_the_body_frame_is_rigid():
    field = FieldRenderer(width=8)
    grid = field.grid(4)
    assert grid.shape == (16, 2)
    # row-major: x runs along a row (the column index), y down the rows; pixel centres as cv2.resize maps them
    np.testing.assert_allclose(grid[1] - grid[0], [128.0, 0.0])
    np.testing.assert_allclose(grid[4] - grid[0], [0.0, 128.0])
    np.testing.assert_allclose(grid[0], [63.5, 63.5])
    # moving the pusher, the body and every pixel together changes only the `place` inputs: with the place
    # weights zeroed the colours are unchanged
    with torch.no_grad():
        first = field.net[0]
        place_cols = [0, 1] + list(range(7, 7 + 4 * field.freqs))
        first.weight[:, place_cols] = 0
    pixels = torch.rand(50, 2) * 200 + 100
    agent, pose = torch.tensor([[200.0, 220.0]]), torch.tensor([[250.0, 260.0, 0.7]])
    shift = torch.tensor([31.0, -17.0])
    a = field(agent, pose, pixels)
    b = field(agent + shift, pose + torch.tensor([*shift, 0.0]), pixels + shift)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _readback_errors(field, n=8, seed=11):
    """Distance between the T's pose read off gym-pusht's frame of a random state and read off the
    field's drawing of (pusher, that pose); inf where no T is found in the drawing."""
    env = PushTRealEnv()
    rng = np.random.default_rng(seed)
    errs = []
    for _ in range(n):
        state = np.array([*rng.uniform(60, 450, 2), *rng.uniform(120, 390, 2), rng.uniform(-np.pi, np.pi)])
        pose = estimate_block_pose(env.render_state(state))
        drawn = field.render(torch.tensor(state[None, :2]).float(), torch.tensor(pose[None]).float(), 96)[0]
        back = estimate_block_pose(drawn)
        errs.append(np.inf if back is None else float(np.linalg.norm(back[:2] - pose[:2])))
    env.close()
    return np.array(errs)


def test_fit_field_renderer_draws_a_t_whose_pose_reads_back():
    frames, agents = random_pusht_frames(300, seed=3)
    poses = features_to_pose(perceive("pusht_block_pose", frames))
    torch.manual_seed(0)
    field = FieldRenderer(width=48)
    assert np.median(_readback_errors(field)) > 20  # untrained: no T where the state puts it
    info = fit_field_renderer(field, frames, agents, poses, steps=600, batch=16, pixels=512, progress=False)
    assert info["steps"] == 600 and info["frames"] == 300
    # unseen states: the T is drawn where the state puts it (about 2 units off, median, after 600 steps)
    errs = _readback_errors(field)
    assert np.median(errs) < 6.0, errs
    # seeded: the same fit twice gives the same field
    torch.manual_seed(0)
    again = FieldRenderer(width=48)
    fit_field_renderer(again, frames[:40], agents[:40], poses[:40], steps=5, batch=4, pixels=64, seed=2,
                       progress=False)
    torch.manual_seed(0)
    twice = FieldRenderer(width=48)
    fit_field_renderer(twice, frames[:40], agents[:40], poses[:40], steps=5, batch=4, pixels=64, seed=2,
                       progress=False)
    for p, q in zip(again.parameters(), twice.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="agent positions"):
        fit_field_renderer(field, frames[:5], agents[:4], poses[:5], steps=1, progress=False)


def test_train_dynamics_with_a_field_renderer_draws_the_env_frames(state_checkpoint, tmp_path):
    root, base = state_checkpoint
    out = tmp_path / "field"
    model = add_pose_dynamics(base, root, out, width=32, epochs=2, field_steps=30, field_width=16, random_frames=4,
                              progress=False)
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["renderer"] == "field" and meta["renderer_training"]["field"]["steps"] == 30
    assert model.cfg.field_renderer_width == 16
    log = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"pose_dynamics", "field_renderer"}
    env = WorldModelEnv(out)
    obs, _ = env.reset(seed=3)
    obs, reward, *_ = env.step(np.array([200.0, 200.0], np.float32))
    # the frame is the field's drawing of the env's own state
    d = env.dynamics
    pose = d.to_pose(env._ctx_state[-1][None, 2:6].numpy())
    expected = model.field_renderer.render(torch.from_numpy(obs["observation.state"][None]).float(),
                                           torch.from_numpy(pose).float(), 96)[0]
    np.testing.assert_array_equal(obs["observation.images.top"], expected)

    def run(e, vec=False):
        o, _ = e.reset(seed=[5] if vec else 5)
        frames = []
        for k in range(3):
            a = np.array([120.0 + 50 * k, 300.0], np.float32)
            o, *_ = e.step(a[None] if vec else a)
            frames.append(np.asarray(o["observation.images.top"]).reshape(-1, 96, 96, 3)[0])
        return np.stack(frames)

    np.testing.assert_array_equal(run(WorldModelEnv(out)), run(WorldModelVectorEnv(1, out), vec=True))
    # only the pose head replaced on top of it: the field is kept
    again = add_pose_dynamics(out, root, tmp_path / "again", width=24, epochs=1, progress=False)
    for p, q in zip(model.field_renderer.parameters(), again.field_renderer.parameters()):
        assert torch.equal(p, q)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["metadata"]["renderer"] == "field"
    with pytest.raises(ValueError, match="choose one renderer"):
        add_pose_dynamics(base, root, tmp_path / "x", epochs=1, render_steps=5, field_steps=5, progress=False)
    broken = WorldModel.from_pretrained(base)
    broken.metadata = {**meta}
    with pytest.raises(ValueError, match="pose dynamics head|field renderer"):
        from cosmos3_robot.envs.world_model_env import LearnedDynamics
        LearnedDynamics(broken)
