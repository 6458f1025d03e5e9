"""One set of checks for every learned-simulator backend: spaces, gymnasium's env checker, seeding,
batch == single, multi-camera non-square frames, bad actions. Run against each registered backend
kind (a tiny MoT world model on one and on two non-square cameras, a tiny structured PushT model, the
shipped checkpoints; structured ones under both runtimes; a tiny and the shipped Franka cube model, three 180x320
cameras and joint_position actions) and a fake backend written here with two 180x320 cameras."""

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from cosmos3_robot.backends import BACKENDS, Backend, Context, Prediction, Session, load_backend
from cosmos3_robot.embodiments import ActionError, Normalizer, load_spec
from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv

PUSHT_START = "cosmos3_robot/PushTReal-v0"


class FakeBackend:
    """A deterministic toy world on the droid spec's two exterior cameras (180x320): a brightness that
    the action's mean moves; the reward is how bright it is."""

    def __init__(self):
        self.spec = load_spec("droid")
        self.cameras = ("exterior_1_left", "exterior_2_left")
        self.history, self.success_threshold = 2, 0.99

    def reset(self, ctx: Context, seed=None) -> Session:
        level = np.stack([ctx.frames[c][:, -1].mean(axis=(1, 2, 3)) for c in self.cameras], 1).mean(1)
        return Session({"level": level.astype(np.float64), "state": ctx.state[:, -1].copy()})

    def step(self, session: Session, actions: np.ndarray) -> Prediction:
        level = np.clip(session.data["level"] + 40 * np.asarray(actions).mean(axis=1), 0, 255)
        session.data["level"] = level
        b = len(level)
        frames = {c: np.broadcast_to((level + 10 * k)[:, None, None, None].clip(0, 255).astype(np.uint8),
                                     (b, 180, 320, 3)).copy() for k, c in enumerate(self.cameras)}
        reward = level / 255.0
        return Prediction(frames, session.data["state"].astype(np.float32), reward, reward >= self.success_threshold)


class FakeJointBackend(FakeBackend):
    """The fake world stepped with DROID's joint_position action (8-D), not the spec's default ee_delta (7-D)."""

    action_variant = "joint_position"


def droid_start(cameras):
    """A start source for the droid spec: frames and a state drawn from the seed."""
    spec = load_spec("droid")

    def start(seed):
        rng = np.random.default_rng(seed)
        obs = {spec.camera(c).key: rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for c in cameras}
        obs["observation.state"] = rng.uniform(spec.state.lower, spec.state.upper).astype(np.float32)
        return obs

    return start


@pytest.fixture(scope="module")
def mot_droid_checkpoint(tmp_path_factory):
    """A tiny untrained world model on the droid spec reading two 180x320 cameras (resized to its 32x32)."""
    from cosmos3_robot.model import WorldModel, get_config

    torch.manual_seed(0)
    model = WorldModel(get_config("tiny"))
    for head in (model.frame_out, model.judge_head, model.state_out):
        torch.nn.init.normal_(head.weight, std=0.05)
    spec, rng = load_spec("droid"), np.random.default_rng(0)
    model.metadata = {"embodiment": "droid", "context": 2, "cameras": ["exterior_1_left", "wrist_left"],
                      "normalizers": {
                          "action": Normalizer.fit(rng.uniform(spec.action.lower, spec.action.upper, (100, 10)),
                                                   "min_max", feature="action").to_dict(),
                          "observation.state": Normalizer.fit(rng.uniform(spec.state.lower, spec.state.upper, (100, 14)),
                                                              "min_max", feature="observation.state").to_dict()}}
    path = tmp_path_factory.mktemp("mot") / "droid"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def structured_checkpoint(tmp_path_factory):
    """A tiny untrained structured PushT model (pose head 16 wide, a 3-layer renderer)."""
    from conftest import save_structured, tiny_pusht_world

    world, spec = tiny_pusht_world(lambda spec: 16)
    return save_structured(world, spec, tmp_path_factory.mktemp("structured") / "pusht")


@pytest.fixture(scope="module")
def franka_checkpoint(tmp_path_factory):
    """A tiny untrained structured Franka cube model (joint servo 32 wide, tower 32, renderer 8 channels)."""
    from cosmos3_robot.backends.structured import StructuredBackend
    from cosmos3_robot.tasks.franka_cube.structured import ENTRY_POINT, FrankaCubeWorld
    from cosmos3_robot.tasks.franka_cube.train import task_config

    torch.manual_seed(0)
    cfg = task_config(arm_width=32, tower={"dim": 32, "ffn_dim": 64, "head_width": 32, "layers": 1},
                      render={"channels": 8, "layers": 3, "height": 24, "width": 40})
    backend = StructuredBackend(FrankaCubeWorld(cfg, load_spec("droid")), load_spec("droid"), success_threshold=0.5,
                                entry_point=ENTRY_POINT, action_variant="joint_position")
    path = tmp_path_factory.mktemp("franka") / "franka"
    backend.save(path)
    return path


CASES = ["fake", "fake-joints", "franka", "shipped-franka", "mot", "mot-droid", "structured", "structured-tower", "structured-tower-torch", "shipped",
         "shipped-fast", "shipped-tower", "shipped-tower-torch"]


@pytest.fixture(params=CASES)
def case(request, tiny_checkpoint, mot_droid_checkpoint, structured_checkpoint, tower_checkpoint, franka_checkpoint):
    """(backend factory, start source) of one backend under test."""
    name = request.param
    if name == "fake":
        return FakeBackend, droid_start(FakeBackend().cameras)
    if name == "franka":  # three 180x320 cameras, joint_position actions, started from the MuJoCo scene
        return lambda: load_backend(franka_checkpoint), "cosmos3_robot/FrankaCubeReal-v0"
    if name == "shipped-franka":
        return lambda: load_backend("franka_cube"), "cosmos3_robot/FrankaCubeReal-v0"
    if name == "fake-joints":
        return FakeJointBackend, droid_start(FakeBackend().cameras)
    if name == "mot":  # sample_noise 0: the flow from the mean, deterministic
        return lambda: load_backend(tiny_checkpoint, sample_noise=0.0), PUSHT_START
    if name == "mot-droid":
        return lambda: load_backend(mot_droid_checkpoint, sample_noise=0.0), droid_start(("exterior_1_left", "wrist_left"))
    if name == "structured":
        return lambda: load_backend(structured_checkpoint), PUSHT_START
    if name == "structured-tower":  # the default runtime: ONNX Runtime
        return lambda: load_backend(tower_checkpoint), PUSHT_START
    if name == "structured-tower-torch":
        return lambda: load_backend(tower_checkpoint, runtime="torch"), PUSHT_START
    if name == "shipped-tower-torch":
        return lambda: load_backend("pusht_tower", runtime="torch"), PUSHT_START
    shipped = {"shipped": "pusht_small", "shipped-fast": "pusht_fast", "shipped-tower": "pusht_tower"}[name]
    return lambda: load_backend(shipped), PUSHT_START


def test_a_backend_names_its_action_variant():
    spec = load_spec("droid")
    env = LearnedEnv(FakeJointBackend(), droid_start(FakeBackend().cameras))
    vec = LearnedVectorEnv(2, FakeJointBackend(), droid_start(FakeBackend().cameras))
    joints = spec.action_variant("joint_position")
    assert env.action_space.shape == vec.single_action_space.shape == (joints.dims,) != (spec.action_dims,)
    np.testing.assert_allclose(env.action_space.high, joints.upper.astype(np.float32))
    env.reset(seed=0)
    with pytest.raises(ActionError):
        env.step(np.zeros(spec.action_dims, np.float32))  # the default variant's width is refused


def test_cases_cover_every_registered_backend():
    assert {"mot", "structured"} <= set(BACKENDS)


def actions_for(env, n, seed=0):
    space = env.action_space if not hasattr(env, "single_action_space") else env.single_action_space
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, (n, *space.shape)).astype(np.float32)


def test_spaces_and_frames_at_each_camera_resolution(case):
    make, start = case
    backend = make()
    assert isinstance(backend, Backend)
    env = LearnedEnv(backend, start, max_episode_steps=5)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for cam in backend.cameras:
        c = backend.spec.camera(cam)
        assert obs[c.key].shape == (c.height, c.width, 3) and obs[c.key].dtype == np.uint8
    for a in actions_for(env, 3):
        obs, reward, terminated, truncated, info = env.step(a)
        assert env.observation_space.contains(obs), {k: (v.shape, v.dtype) for k, v in obs.items()}
        assert np.isfinite(reward) and isinstance(terminated, bool) and "is_success" in info


def test_gymnasium_env_checker(case):
    make, start = case
    check_env(LearnedEnv(make(), start, max_episode_steps=20), skip_render_check=True)


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        out.append(env.step(a)[0])
    return out


def test_same_seed_same_rollout(case):
    make, start = case
    env = LearnedEnv(make(), start)
    acts = actions_for(env, 4)
    a, b, c = rollout(env, 1, acts), rollout(env, 1, acts), rollout(env, 2, acts)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert any(not np.array_equal(x[k], y[k]) for x, y in zip(a, c) for k in x)


def test_batch_equals_single(case):
    make, start = case
    backend = make()
    seeds = [5, 6, 7]
    venv = LearnedVectorEnv(3, backend, start)
    env = LearnedEnv(backend, start)
    acts = actions_for(env, 4, seed=1)
    obs, _ = venv.reset(seed=seeds)
    batched = [obs]
    for a in acts:
        batched.append(venv.step(np.repeat(a[None], 3, 0))[0])
    for i, s in enumerate(seeds):
        single = rollout(env, s, acts)
        for t, (x, y) in enumerate(zip(single, batched)):
            for k in x:
                # batched convolutions may round one grey level differently from batch-1 ones
                np.testing.assert_allclose(x[k].astype(float), y[k][i].astype(float), atol=2 if x[k].dtype == np.uint8
                                           else 1e-3, err_msg=f"env {i} step {t} key {k}")


def test_bad_actions_are_refused_before_the_backend(case):
    make, start = case
    env = LearnedEnv(make(), start, out_of_limits="reject")
    env.reset(seed=0)
    dims = env.action_space.shape[0]
    with pytest.raises(ActionError, match=r"shape"):
        env.step(np.zeros(dims + 1))
    with pytest.raises(ActionError, match="nan"):
        env.step(np.full(dims, np.nan))
    with pytest.raises(ActionError, match="not numeric"):
        env.step(np.array(["x"] * dims))
    with pytest.raises(ActionError, match="value"):
        env.step(env.action_space.high * 10 + 1)
    venv = LearnedVectorEnv(2, make(), start)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="num_envs=2"):
        venv.step(np.zeros((3, dims), np.float32))


def test_fake_backend_two_non_square_cameras_through_the_vector_env():
    venv = LearnedVectorEnv(2, FakeBackend(), droid_start(("exterior_1_left", "exterior_2_left")), max_episode_steps=3)
    obs, _ = venv.reset(seed=0)
    assert obs["observation.images.exterior_1_left"].shape == (2, 180, 320, 3)
    assert obs["observation.images.exterior_2_left"].shape == (2, 180, 320, 3)
    assert venv.observation_space.contains(obs)
    frames = venv.render()
    assert isinstance(frames, tuple) and len(frames) == 2 and frames[0].shape == (180, 320, 3)


def test_tower_backend_reports_disagreement_through_both_envs(tower_checkpoint):
    """A sampled step's disagreement reaches `info` in the single and the vector env, the same for a session
    alone or in a batch."""
    backend = load_backend(tower_checkpoint)
    env, venv = LearnedEnv(backend, PUSHT_START), LearnedVectorEnv(2, backend, PUSHT_START)
    env.reset(seed=11)
    venv.reset(seed=[10, 11])
    a = np.array([200.0, 300.0], np.float32)
    single = env.step(a)[4]["disagreement"]
    batched = venv.step(np.stack([a, a]))[4]
    assert np.isfinite(single) and single > 0
    assert batched["_disagreement"].all()
    np.testing.assert_allclose(batched["disagreement"][1], single, rtol=1e-5)
