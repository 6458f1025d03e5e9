import json

import numpy as np
import pytest
import torch

from cosmos3_robot.datasets import load_episodes
from cosmos3_robot.backends.structured import StructuredBackend
from cosmos3_robot.embodiments.perception import perceive
from cosmos3_robot.model import StateRenderer, WorldModel, get_config
from cosmos3_robot.train.renderers import fit_renderer, fit_renderer_pixels
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv
from cosmos3_robot.tasks.pusht.dynamics import PoseDynamics, fit_pose_dynamics, to_body, transitions
from cosmos3_robot.tasks.pusht.train import train_dynamics
from cosmos3_robot.tasks.pusht.vision import features_to_pose, goal_coverage, pose_to_features

START = "cosmos3_robot/PushTReal-v0"


def _random_states(n, seed=0):
    rng = np.random.default_rng(seed)
    agent, prev_agent, action, prev_action = (torch.from_numpy(rng.uniform(20, 490, (n, 2))).float() for _ in range(4))
    pose = torch.from_numpy(np.column_stack([rng.uniform(80, 430, (n, 2)), rng.uniform(-np.pi, np.pi, n)])).float()
    return agent, prev_agent, action, prev_action, pose


def test_step_inverts_the_body_frame_targets_and_a_resting_body_never_moves():
    head = PoseDynamics(width=16)
    agent, prev_agent, action, prev_action, pose = _random_states(64)
    rng = np.random.default_rng(1)
    next_agent = agent + torch.from_numpy(rng.normal(0, 8, (64, 2))).float()
    next_pose = pose + torch.from_numpy(rng.normal(0, [5, 5, 0.1], (64, 3))).float()
    target = PoseDynamics.targets(agent, next_agent, pose, next_pose)
    # a head that outputs exactly the targets, in contact: one step lands on the true next state
    head.forward = lambda *a: (target, torch.full((64,), 10.0))
    got_agent, got_pose = head.step(agent, prev_agent, action, prev_action, pose)
    torch.testing.assert_close(got_agent, next_agent, atol=1e-3, rtol=0)
    torch.testing.assert_close(got_pose, next_pose, atol=1e-3, rtol=0)
    # off contact the body stays put exactly, whatever the output says; the pusher still moves
    head.forward = lambda *a: (target, torch.full((64,), -10.0))
    got_agent, got_pose = head.step(agent, prev_agent, action, prev_action, pose)
    assert torch.equal(got_pose, pose)
    torch.testing.assert_close(got_agent, next_agent, atol=1e-3, rtol=0)


def test_body_frame_features_do_not_change_when_the_scene_moves_rigidly():
    head = PoseDynamics(width=16)
    agent, prev_agent, action, prev_action, pose = _random_states(32, seed=2)
    f = head.features(agent, prev_agent, action, prev_action, pose)
    shift = torch.tensor([13.0, -7.0])
    moved = head.features(agent + shift, prev_agent + shift, action + shift, prev_action + shift,
                          pose + torch.tensor([13.0, -7.0, 0.0]))
    torch.testing.assert_close(moved[:, :8], f[:, :8], atol=1e-4, rtol=0)  # the pusher relative to the body
    assert not torch.allclose(moved[:, 8:10], f[:, 8:10])  # where the body lies (the walls) still shows
    # turning the whole scene about the origin leaves the body-frame features unchanged too
    phi = 0.7
    R = torch.tensor([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]], dtype=torch.float32)
    turned = head.features(*(x @ R.T for x in (agent, prev_agent, action, prev_action)),
                           torch.cat([pose[:, :2] @ R.T, pose[:, 2:] + phi], dim=1))
    torch.testing.assert_close(turned[:, :8], f[:, :8], atol=1e-4, rtol=0)
    # a point at body offset (u, v) is found at (u, v)
    uv = torch.tensor([[20.0, 75.0]]).repeat(32, 1)
    c, s_ = torch.cos(pose[:, 2]), torch.sin(pose[:, 2])
    world = pose[:, :2] + torch.stack([c * uv[:, 0] - s_ * uv[:, 1], s_ * uv[:, 0] + c * uv[:, 1]], dim=1)
    torch.testing.assert_close(to_body(world, pose), uv, atol=1e-3, rtol=0)


def _pushing_episodes(n_episodes=12, steps=40, seed=0):
    """A pusher that shoves a body along x when it is within 30 units of it; otherwise nothing moves."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_episodes):
        agent, pose = [rng.uniform(150, 350, 2)], [np.array([*rng.uniform(200, 300, 2), rng.uniform(-1, 1)])]
        actions = []
        for _ in range(steps):
            a = agent[-1] + 0.25 * (pose[-1][:2] - agent[-1]) + rng.normal(0, 12, 2)  # drawn to the body
            step = a - agent[-1]
            near = np.linalg.norm(agent[-1] - pose[-1][:2]) < 30
            actions.append(a)
            agent.append(a)
            pose.append(pose[-1] + (np.array([step[0], 0.0, 0.0]) if near else 0.0))
        eps.append({"agent": np.array(agent), "pose": np.array(pose), "action": np.array(actions)})
    return eps


def test_fit_learns_contact_is_seeded_and_keeps_resting_bodies_still():
    data = transitions(_pushing_episodes(n_episodes=30))
    assert len(data["agent"]) == 30 * 40
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        head = PoseDynamics(width=64, layers=2)
        info = fit_pose_dynamics(head, data, epochs=60, batch=64, seed=3, progress=False)
        results.append(torch.cat([p.detach().flatten() for p in head.parameters()]))
    assert torch.equal(results[0], results[1])
    assert 0.05 < info["moving_share"] < 0.95
    held = transitions(_pushing_episodes(n_episodes=4, seed=9))
    inputs = [held[k] for k in ("agent", "prev_agent", "action", "prev_action", "pose")]
    _, pose = head.step(*inputs)
    moved = (held["next_pose"] - held["pose"]).abs().sum(-1) > 1e-6
    err = (pose - held["next_pose"])[:, :2].norm(dim=-1)
    still = (held["next_pose"] - held["pose"])[:, :2].norm(dim=-1)
    assert err[moved].mean() < 0.7 * still[moved].mean()  # beats "no change" where the body is pushed
    assert (pose[~moved] == held["pose"][~moved]).float().mean() > 0.8  # and mostly leaves it exactly alone


def test_transitions_name_the_mismatch():
    with pytest.raises(ValueError, match="as many poses as states"):
        transitions([{"agent": np.zeros((5, 2)), "pose": np.zeros((4, 3)), "action": np.zeros((4, 2))}])
    with pytest.raises(ValueError, match="no transitions"):
        transitions([{"agent": np.zeros((1, 2)), "pose": np.zeros((1, 3)), "action": np.zeros((0, 2))}])


def test_random_pusht_frames_are_the_real_renderers_frames_of_those_states():
    from cosmos3_robot.tasks.pusht import random_pusht_frames

    frames, agents = random_pusht_frames(3, seed=1)
    assert frames.shape == (3, 96, 96, 3) and frames.dtype == np.uint8 and agents.shape == (3, 2)
    again, _ = random_pusht_frames(3, seed=1)
    np.testing.assert_array_equal(frames, again)
    pose = features_to_pose(perceive("pusht_block_pose", frames))
    assert np.all((pose[:, :2] > 0) & (pose[:, :2] < 512))


def test_goal_coverage_matches_gym_pusht_and_poses_round_trip():
    env = PushTRealEnv()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for i in range(30):
        pose = np.array([256, 256, np.pi / 4]) + rng.normal(0, [20, 20, 0.5]) if i % 2 else \
            np.array([*rng.uniform(100, 400, 2), rng.uniform(-3, 3)])
        env.reset(seed=0, options={"state": np.array([60.0, 60.0, *pose])})
        assert goal_coverage(pose) == pytest.approx(env.coverage(), abs=1e-9)
    assert goal_coverage(np.array([256, 256, np.pi / 4])) == pytest.approx(1.0)
    poses = np.column_stack([rng.uniform(0, 512, (20, 2)), rng.uniform(-3, 3, 20)])
    np.testing.assert_allclose(features_to_pose(pose_to_features(poses)), poses, atol=1e-3)


def _state_model():
    torch.manual_seed(0)
    return WorldModel(get_config("tiny", frame_head="conv", conv_head_state=6, state_geometry="point:0,pose:2",
                                 conv_head_width=16, conv_head_layers=3))


def test_render_state_learns_frames_from_the_state_and_sample_draws_from_a_hint():
    model = _state_model()
    g, c = model.cfg.latent_size, model.cfg.latent_channels
    state = torch.zeros(8, model.cfg.state_dim)
    state[:, :6] = torch.rand(8, 6) * 2 - 1
    # target: a latent that depends on where the state puts things
    latents = torch.einsum("bk,kchw->bchw", state[:, :6], torch.randn(6, c, g, g))
    before = ((model.render_state(state)[:, 0] - latents) ** 2).mean().item()
    info = fit_renderer(model, {"state": state, "latents": latents}, steps=150, batch=8, lr=3e-3, state_noise=0.0,
                        progress=False)
    assert info["mse"] < 0.5 * before
    assert model.render_state(state).shape == (8, 1, c, g, g)
    # sampling with a state hint returns the hint as the state and draws the frames from it
    from cosmos3_robot.model.world_model import PrefixCache  # noqa: F401

    b = 2
    cache = model.encode_prefix(torch.zeros(b, 4, dtype=torch.long), torch.zeros(b, 2, 1, c, g, g),
                                torch.zeros(b, 2, model.cfg.state_dim), torch.zeros(b, dtype=torch.long))
    masks = torch.ones(b, model.cfg.action_dim), torch.ones(b, model.cfg.state_dim)
    acts = torch.zeros(b, 1, model.cfg.action_dim)
    out_a = model.sample(cache, 1, 1, *masks, actions=acts, steps=1, noise_scale=0.0, state_hint=state[:b, None])
    out_b = model.sample(cache, 1, 1, *masks, actions=acts, steps=1, noise_scale=0.0, state_hint=state[2:4, None])
    torch.testing.assert_close(out_a["state"], state[:b, None])
    assert not torch.allclose(out_a["frames"], out_b["frames"])
    plain = WorldModel(get_config("tiny"))
    with pytest.raises(ValueError, match="conv_head_state"):
        plain.render_state(state)


@pytest.mark.parametrize("steps", [1, 20, 40])
def test_fit_renderer_pixels_runs_any_number_of_steps(steps):
    # 20 steps once crashed inside OneCycleLR (a zero-length warm-up)
    model = _state_model()
    size = model.cfg.image_size
    frames = np.random.default_rng(0).integers(0, 255, (6, size, size, 3), dtype=np.uint8)
    decoder = [p.clone() for p in model.frame_tokenizer.decoder.parameters()]
    info = fit_renderer_pixels(model, frames, torch.zeros(6, model.cfg.state_dim), steps=steps, batch=2,
                               progress=False)
    assert info["steps"] == steps and np.isfinite(info["loss"])
    assert not all(torch.equal(p, q) for p, q in zip(decoder, model.frame_tokenizer.decoder.parameters()))


def test_state_renderer_cut_out_of_the_world_model_draws_the_same_frames():
    model = _state_model()
    for p in model.frame_conv.parameters():  # an untrained head's last layer is zero: give it weights
        torch.nn.init.normal_(p, std=0.1)
    state = torch.zeros(5, model.cfg.state_dim)
    state[:, :6] = torch.rand(5, 6) * 2 - 1
    expected = model.frame_tokenizer.decode(model.render_state(state)[:, 0])
    renderer = StateRenderer.from_world_model(model)
    torch.testing.assert_close(renderer(state[:, :6]), expected, atol=1e-5, rtol=1e-5)
    assert renderer.draw(state[:, :6]).shape == (5, model.cfg.image_size, model.cfg.image_size, 3)
    n_model = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in renderer.parameters()) < n_model / 2  # the transformer is left behind
    with pytest.raises(ValueError, match="state_geometry"):
        StateRenderer.from_world_model(WorldModel(get_config("tiny")))


def test_train_dynamics_writes_a_structured_checkpoint_drawn_from_the_state(state_checkpoint, tmp_path):
    root, base = state_checkpoint
    out = tmp_path / "pd"
    backend = train_dynamics(base, root, out, width=32, epochs=3, render_steps=20, render_width=16, render_layers=3,
                             render_batch=8, pixel_steps=3, random_frames=4, progress=False, dynamics="mlp")
    raw = json.loads((out / "config.json").read_text())
    assert raw["backend"] == "structured" and raw["task"].endswith(":PushTWorld")
    assert raw["provenance"]["pose_dynamics"]["transitions"] > 0 and raw["task_config"]["renderer"]["width"] == 16
    log = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"pose_dynamics", "renderer", "renderer_pixels"}
    n_frames = sum(len(ep["frames"]["observation.image"]) for ep in load_episodes(root))
    assert raw["provenance"]["renderer_training"]["pixels"]["frames"] == n_frames + 4  # dataset frames + random ones
    # the checkpoint holds only what the env runs: no transformer, no encoder
    from safetensors.torch import load_file

    keys = load_file(out / "model.safetensors").keys()
    assert keys and all(k.startswith(("dynamics.", "renderer.head.", "renderer.tokenizer.decoder.",
                                      "renderer.tokenizer.latent_")) for k in keys)

    env = LearnedEnv(checkpoint=out, start=START)
    obs, _ = env.reset(seed=4)
    start = features_to_pose(perceive("pusht_block_pose", obs["observation.image"][None]))[0]
    # a head that never senses contact: the T stays exactly where it was perceived, the reward is its coverage
    torch.nn.init.constant_(env.backend.task.dynamics.contact.bias, -1e4)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(np.array([30.0, 30.0], np.float32))
    state_pose = features_to_pose(env._session.data["world"][0, -1, 2:6])
    np.testing.assert_allclose(state_pose, start, atol=1e-3)
    assert reward == pytest.approx(float(goal_coverage(start)), abs=1e-5)
    assert terminated == (reward >= 0.9)
    # the observed pusher is the fed-back state, inside the spec's limits
    np.testing.assert_allclose(obs["observation.state"], env.backend.task.agent(env._session.data["world"][:, -1])[0],
                               atol=1e-3)
    assert np.all((obs["observation.state"] >= 0) & (obs["observation.state"] <= 512))

    def run(e, vec=False):
        o, _ = e.reset(seed=[5] if vec else 5)
        frames = []
        for k in range(4):
            a = np.array([100.0 + 40 * k, 200.0], np.float32)
            o, r, *_ = e.step(a[None] if vec else a)
            frames.append(np.asarray(o["observation.image"]).reshape(-1, 96, 96, 3)[0])
        return np.stack(frames)

    one = LearnedEnv(backend, START)
    np.testing.assert_array_equal(run(one), run(one))
    np.testing.assert_array_equal(run(one), run(LearnedVectorEnv(1, backend, START), vec=True))


def test_train_dynamics_needs_a_perceived_pose(tiny_checkpoint, tmp_path, state_checkpoint):
    root, _ = state_checkpoint
    with pytest.raises(ValueError, match="--perceive-state"):
        train_dynamics(tiny_checkpoint, root, tmp_path / "x", epochs=1, progress=False)
    with pytest.raises(ValueError, match="--render-steps"):
        train_dynamics(tiny_checkpoint, root, tmp_path / "x", epochs=1, pixel_steps=5, progress=False)


def test_train_dynamics_on_a_structured_checkpoint_replaces_only_the_pose_head(state_checkpoint, tmp_path):
    root, base = state_checkpoint
    first = tmp_path / "first"
    train_dynamics(base, root, first, width=32, epochs=1, render_steps=5, render_width=16, render_layers=3,
                   render_batch=8, progress=False)
    second = train_dynamics(first, root, tmp_path / "second", width=48, epochs=2, progress=False, dynamics="mlp")
    old = StructuredBackend.load(first)
    assert second.task.dynamics.out.in_features == 48
    for name, p in old.task.renderer.state_dict().items():  # the renderer is carried over untouched
        assert torch.equal(p, second.task.renderer.state_dict()[name]), name
    assert second.provenance["pose_dynamics"]["epochs"] == 2
    with pytest.raises(ValueError, match="renderer is final"):
        train_dynamics(first, root, tmp_path / "x", epochs=1, render_steps=5, progress=False)
    # the head's init and fit depend on the seed and the data alone, not on the init checkpoint
    from_base = train_dynamics(base, root, tmp_path / "third", width=48, epochs=2, render_steps=5, render_width=16,
                               render_layers=3, render_batch=8, progress=False, dynamics="mlp")
    for p, q in zip(second.task.dynamics.parameters(), from_base.task.dynamics.parameters()):
        assert torch.equal(p, q)


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_train_dynamics_trains_the_generator_tower(state_checkpoint, tmp_path):
    """The default dynamics is the Generator tower: it replaces the dynamics, keeps the renderer, and its env
    reports a disagreement per step, the same for a seed every time."""
    root, base = state_checkpoint
    first = tmp_path / "first"
    train_dynamics(base, root, first, width=32, epochs=1, render_steps=5, render_width=16, render_layers=3,
                   render_batch=8, progress=False, dynamics="mlp")
    tower = train_dynamics(first, root, tmp_path / "tower", width=16, epochs=3, progress=False,
                           tower={"layers": 1, "ffn_dim": 16, "head_width": 16, "samples": 3})
    raw = json.loads((tmp_path / "tower" / "config.json").read_text())
    assert "tower" in raw["task_config"] and "dynamics_width" not in raw["task_config"]
    assert raw["provenance"]["tower"]["transitions"] > 0 and "pose_dynamics" not in raw["provenance"]
    assert raw["task_config"]["tower"]["change_scale"][1][0] > 0  # fit from the data, saved with it
    old = StructuredBackend.load(first)
    for name, p in old.task.renderer.state_dict().items():
        assert torch.equal(p, tower.task.renderer.state_dict()[name]), name
    env = LearnedEnv(checkpoint=tmp_path / "tower", start=START)

    def run(seed):
        env.reset(seed=seed)
        return [env.step(np.array([200.0, 250.0], np.float32))[4]["disagreement"] for _ in range(3)]

    a, b = run(3), run(3)
    assert a == b and all(np.isfinite(a)) and min(a) >= 0
    with pytest.raises(ValueError, match="dynamics="):
        train_dynamics(first, root, tmp_path / "x", dynamics="gnn", progress=False)


def test_tower_transitions_add_exact_rest_transitions():
    """A pusher at rest whose target is where it stands moves nothing: those transitions are added exactly."""
    from cosmos3_robot.tasks.pusht.train import tower_transitions

    rng = np.random.default_rng(0)
    eps = [{"agent": rng.uniform(0, 512, (7, 2)), "pose": rng.uniform(0, 3, (7, 3)), "action": rng.uniform(0, 512, (6, 2))}
           for _ in range(2)]
    plain, rest = tower_transitions(eps), tower_transitions(eps, rest_every=3)
    assert len(plain["action"]) == 12 and len(rest["action"]) == 12 + 2 * 3  # states 0, 3, 6 of each episode
    extra = slice(12, None)
    for i in range(2):
        torch.testing.assert_close(rest["now"][i][extra], rest["next"][i][extra])
        torch.testing.assert_close(rest["now"][i][extra], rest["prev"][i][extra])
    torch.testing.assert_close(rest["action"][extra], rest["now"][0][extra])
    torch.testing.assert_close(rest["prev_action"][extra], rest["now"][0][extra])
    torch.testing.assert_close(rest["now"][1][12], torch.tensor(eps[0]["pose"][0], dtype=torch.float32))


def test_settle_episodes_run_gym_pushts_controller_to_the_target_and_leave_the_t_alone():
    """A pusher at rest sent to a near target closes in on it in gym-pusht's physics (the tower learned to
    stop short); states whose path would touch the T are skipped."""
    from cosmos3_robot.tasks.pusht.train import settle_episodes, tower_transitions
    from cosmos3_robot.tasks.pusht.vision import t_polygon
    from shapely.geometry import Point

    rng = np.random.default_rng(0)
    far = {"agent": np.column_stack([rng.uniform(40, 470, 40), rng.uniform(40, 120, 40)]),
           "pose": np.tile([256.0, 330.0, 0.0], (40, 1)), "action": rng.uniform(0, 512, (39, 2))}
    touching = {"agent": np.tile([256.0, 315.0], (10, 1)), "pose": np.tile([256.0, 300.0, 0.0], (10, 1)),
                "action": np.tile([256.0, 315.0], (9, 2))[:, :2]}
    assert t_polygon(touching["pose"][0]).distance(Point(touching["agent"][0])) < 15
    eps = settle_episodes([far, touching], every=1, steps=8, seed=3)
    assert len(eps) == 40  # all of the far ones, none of the touching ones
    for ep in eps:
        path, target = ep["states"]["pusher"], ep["action"][0]
        gaps = np.linalg.norm(path - target, axis=1)
        assert 0.25 - 1e-6 <= gaps[0] <= 25 + 1e-6
        assert gaps[1] < 0.85 * gaps[0] and gaps[-1] < 0.1 * gaps[0] + 1e-3  # closes in, and nearly all the way
        np.testing.assert_array_equal(ep["states"]["tee"], np.tile(far["pose"][0], (9, 1)))
        np.testing.assert_array_equal(ep["action"], np.tile(target, (8, 1)))
    assert settle_episodes([far], every=1, seed=3)[0]["action"][0].tolist() == eps[0]["action"][0].tolist()
    data = tower_transitions([far], settle_every=4)
    assert len(data["action"]) == 39 + 10 * 6


def test_the_learned_t_is_kept_inside_gym_pushts_walls():
    """A T pushed through a wall comes back inside the arena by the shortest move, as gym-pusht's walls push it."""
    from cosmos3_robot.tasks.pusht.structured import WALLS, inside_walls
    from cosmos3_robot.tasks.pusht.vision import t_polygon

    poses = np.array([[171.8, 471.0, -2.3], [512.0, 376.7, 0.5], [-10.0, 600.0, 3.0], [256.0, 256.0, 0.7]])
    moved = inside_walls(poses)
    for before, after in zip(poses, moved):
        corners = np.asarray(t_polygon(after).exterior.coords)
        assert corners.min() >= WALLS[0] - 1e-9 and corners.max() <= WALLS[1] + 1e-9
        assert after[2] == before[2]
        if np.asarray(t_polygon(before).exterior.coords).max() <= WALLS[1]:
            np.testing.assert_array_equal(after, before)  # a T inside stays where it is
    assert np.asarray(t_polygon(moved[0]).exterior.coords)[:, 1].max() == pytest.approx(WALLS[1])  # touches it
    np.testing.assert_array_equal(inside_walls(poses[0]), moved[0])


def test_transitions_hash_tells_where_two_rebuilds_part():
    """The tower's provenance carries a hash of its training transitions and the machine it ran on
    (docs/eval_pusht_tower.md, "What a rebuild reproduces"): the same data hashes the same, one ulp apart does not."""
    from cosmos3_robot.tasks.pusht.train import machine, transitions_sha1

    rng = np.random.default_rng(0)
    data = {"now": [torch.from_numpy(rng.normal(size=(5, 2)).astype(np.float32))], "action": torch.zeros(5, 2)}
    same = {"now": [data["now"][0].clone()], "action": torch.zeros(5, 2)}
    assert transitions_sha1(data) == transitions_sha1(same)
    same["now"][0][0, 0] = torch.nextafter(same["now"][0][0, 0], torch.tensor(np.inf))
    assert transitions_sha1(data) != transitions_sha1(same)
    m = machine()
    assert m["threads"] >= 1 and m["torch"] == torch.__version__ and m["cpu"]
