"""The Generator tower in policy mode: samples, fit, and the agent around a structured checkpoint."""

import numpy as np
import pytest
import torch

from cosmos3_robot.embodiments import load_spec
from cosmos3_robot.model.entity_policy import EntityPolicy, EntityPolicyConfig
from cosmos3_robot.train.entity import fit_entity_policy, policy_samples
from cosmos3_robot.tasks.pusht.structured import ENTITIES, tower_config

NAMES = [e["name"] for e in ENTITIES]


def small_config(chunk=4, **kw):
    return EntityPolicyConfig(tower_config(load_spec("pusht"), dim=16, layers=1, ffn_dim=32).to_dict(), chunk=chunk,
                              head_width=64, **kw)


def test_policy_samples_line_up_chunks_and_the_actions_before():
    states = {"pusher": np.arange(10.0).reshape(5, 2), "tee": np.zeros((5, 3))}
    action = np.arange(100.0, 110.0).reshape(5, 2)
    data = policy_samples([{"states": states, "action": action, "rest_action": np.array([-1.0, -1.0])}], NAMES, 3)
    assert data["chunk"].shape == (5, 3, 2) and data["now"][0].shape == (5, 2)
    np.testing.assert_array_equal(data["chunk"][0].numpy(), action[:3])
    np.testing.assert_array_equal(data["chunk"][4].numpy(), np.repeat(action[4:5], 3, 0))  # padded past the end
    np.testing.assert_array_equal(data["last_action"][:3].numpy(), [[-1, -1], action[0], action[1]])
    np.testing.assert_array_equal(data["prev_action"][:3].numpy(), [[-1, -1], [-1, -1], action[0]])
    np.testing.assert_array_equal(data["prev"][0][:2].numpy(), [states["pusher"][0], states["pusher"][0]])


def toy_episodes(n, rng):
    """The pusher heads for the T in steps of 8 units: each chunk depends on where the T lies from it."""
    eps = []
    for _ in range(n):
        pusher, tee = rng.uniform(100, 400, 2), np.array([*rng.uniform(100, 400, 2), rng.uniform(-3, 3)])
        pos, actions = [pusher], []
        for _ in range(12):
            d = tee[:2] - pos[-1]
            actions.append(pos[-1] + 8 * d / max(np.linalg.norm(d), 1e-6))
            pos.append(actions[-1])
        eps.append({"states": {"pusher": np.array(pos[:12]), "tee": np.repeat(tee[None], 12, 0)},
                    "action": np.array(actions), "rest_action": pusher})
    return eps


def test_the_head_learns_a_chunk_that_depends_on_the_scene():
    rng = np.random.default_rng(0)
    data = policy_samples(toy_episodes(200, rng), NAMES, 4)
    test = policy_samples(toy_episodes(20, np.random.default_rng(1)), NAMES, 4)
    torch.manual_seed(0)
    policy = EntityPolicy(small_config())

    def error(p):
        chunk = p.sample(test["now"], test["prev"], test["last_action"], test["prev_action"],
                         generator=torch.Generator().manual_seed(0))
        return float((chunk - test["chunk"]).norm(dim=-1).mean())

    before = error(policy)
    info = fit_entity_policy(policy, data, epochs=30, batch=128, lr=3e-3, progress=False)
    after = error(policy)
    hold = float((test["chunk"] - test["now"][0][:, None]).norm(dim=-1).mean())  # staying put: ~20 units off
    assert info["samples"] == 2400 and after < hold / 4 and after < before / 3, (before, after, hold)
    assert policy.cfg.action_scale and all(s > 0 for s in policy.cfg.action_scale)
    # one flow step is a coarser sampler of the same head, still far better than untrained
    one = policy.sample(test["now"], test["prev"], test["last_action"], test["prev_action"], flow_steps=1,
                        generator=torch.Generator().manual_seed(0))
    assert float((one - test["chunk"]).norm(dim=-1).mean()) < hold / 2


def test_bad_policy_configs_name_the_field():
    with pytest.raises(ValueError, match="chunk=0"):
        small_config(chunk=0)


@pytest.fixture(scope="module")
def policy_checkpoint(tmp_path_factory):
    """A tiny untrained PushT structured checkpoint with a sprite renderer and a policy head (chunk 4)."""
    from conftest import save_structured
    from cosmos3_robot.embodiments import Normalizer
    from cosmos3_robot.tasks.pusht.structured import PushTWorld, sprite_config, task_config

    torch.manual_seed(0)
    spec = load_spec("pusht")
    norm = Normalizer.fit(np.random.default_rng(0).uniform(0, 512, (100, 2)), "min_max", feature="observation.state")
    world = PushTWorld(task_config(norm.to_dict(), tower_config(spec, dim=16, layers=1, ffn_dim=16, head_width=16),
                                   sprite_config(sprite_size=8), small_config()), spec)
    return save_structured(world, spec, tmp_path_factory.mktemp("policy") / "pusht")


def test_the_policy_head_acts_by_name_and_imagines_its_chunk(policy_checkpoint):
    from cosmos3_robot.policies import StructuredPolicy
    from cosmos3_robot.tasks import make_policy
    from cosmos3_robot.tasks.pusht.real import PushTRealEnv

    policy = make_policy("pusht", f"world-model:{policy_checkpoint}#chunk=2&steps=1", seed=0)
    assert isinstance(policy, StructuredPolicy) and policy.n_action_steps == 2 and policy.flow_steps == 1
    env = PushTRealEnv()
    obs, _ = env.reset(seed=0)
    policy.imagine = True
    actions = []
    for _ in range(5):
        actions.append(policy.select_action(obs))
        assert actions[-1].shape == (2,) and np.all((actions[-1] >= 0) & (actions[-1] <= 512))
        obs, *_ = env.step(actions[-1])
    imagined = policy.imagined
    assert imagined["actions"].shape == (2, 2) and imagined["states"].shape == (2, 2)
    assert imagined["frames"]["top"].shape[0] == 2 and imagined["frames"]["top"].dtype == np.uint8
    # seeded: the same seed gives the same actions and the same imagined future, whatever torch's global seed
    again = make_policy("pusht", f"world-model:{policy_checkpoint}#chunk=2&steps=1", seed=0)
    again.imagine = True
    torch.manual_seed(123)
    obs, _ = env.reset(seed=0)
    for a in actions:
        np.testing.assert_array_equal(again.select_action(obs), a)
        obs, *_ = env.step(a)
    np.testing.assert_array_equal(again.imagined["states"], imagined["states"])
    with pytest.raises(ValueError, match="#chunk=N&steps=S"):
        make_policy("pusht", f"world-model:{policy_checkpoint}#chunks=2")
    with pytest.raises(ValueError, match="play 1..4"):
        make_policy("pusht", f"world-model:{policy_checkpoint}#chunk=9")


def plan_once(policy) -> tuple[np.ndarray, dict]:
    """One planning call from a real first frame, with a reward that differs per chunk (the pusher near a point):
    the action played, and what the planner saw: its sampled `chunks`, the `rows` of each imagined step, and each
    imagined row's `score` summed over the steps."""
    from cosmos3_robot.tasks.pusht.real import PushTRealEnv

    task, seen = policy.task, {"rows": [], "score": 0.0}
    act, step = task.act, task.step
    goal = np.array([0.3, -0.2], np.float32)

    def recording_act(*a, **k):
        seen["chunks"] = act(*a, **k)
        return seen["chunks"]

    def recording_step(*a, **k):
        out = step(*a, **k)
        seen["rows"].append(len(out[0]))
        seen["score"] = seen["score"] - np.linalg.norm(out[0][:, :2] - goal, axis=-1)
        return out

    task.act, task.step = recording_act, recording_step
    task.reward = lambda world: -np.linalg.norm(world[:, :2] - goal, axis=-1)
    try:
        obs, _ = PushTRealEnv().reset(seed=1)
        chosen = policy.select_action(obs)
    finally:
        del task.act, task.step, task.reward
    return chosen, seen


def test_planning_keeps_the_chunk_its_own_dynamics_imagines_best(policy_checkpoint):
    """#plan=K: K chunks sampled, each rolled through the checkpoint's dynamics, the best by the task's reward."""
    from cosmos3_robot.tasks import make_policy

    policy = make_policy("pusht", f"world-model:{policy_checkpoint}#plan=5", seed=0)
    assert policy.candidates == 5 and make_policy("pusht", f"world-model:{policy_checkpoint}").candidates == 1
    chosen, seen = plan_once(policy)
    assert seen["rows"] == [5] * 4  # the whole chunk of 4 imagined, one draw per candidate
    assert np.ptp(seen["score"]) > 0  # the candidates differ in imagined reward
    np.testing.assert_array_equal(chosen, seen["chunks"][int(np.argmax(seen["score"])), 0].astype(np.float32))
    with pytest.raises(ValueError, match="plan=0"):
        make_policy("pusht", f"world-model:{policy_checkpoint}#plan=0")


def test_pessimistic_planning_scores_each_chunk_by_its_worst_imagined_future(policy_checkpoint):
    """#horizon=H&draws=M: each candidate's first H actions are imagined M times on independent noise, and the
    chunk whose worst future earns the most is kept; a chunk the model is unsure about loses to a sure one."""
    from cosmos3_robot.tasks import make_policy

    policy = make_policy("pusht", f"world-model:{policy_checkpoint}#plan=3&horizon=2&draws=4", seed=0)
    assert (policy.candidates, policy.horizon, policy.draws) == (3, 2, 4)
    chosen, seen = plan_once(policy)
    assert seen["rows"] == [12, 12]  # 3 candidates x 4 draws, 2 imagined steps
    per_draw = seen["score"].reshape(3, 4)
    assert np.ptp(per_draw, axis=1).max() > 0  # the draws differ: independent noise per future
    np.testing.assert_array_equal(chosen, seen["chunks"][int(np.argmax(per_draw.min(1))), 0].astype(np.float32))
    for bad, match in (("horizon=5", "imagine 1..4"), ("draws=0", "draws=0"), ("horizon=x", "horizon=x")):
        with pytest.raises(ValueError, match=match):
            make_policy("pusht", f"world-model:{policy_checkpoint}#plan=2&{bad}")


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_train_policy_relabels_with_the_expert_and_writes_a_runnable_head(policy_checkpoint, tmp_path, capsys):
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.cli import main
    from cosmos3_robot.datasets import load_episodes, read_episode_meta
    from cosmos3_robot.tasks import make_policy
    from cosmos3_robot.tasks.pusht.real import PushTRealEnv
    from cosmos3_robot.tasks.pusht.train import relabel

    data = tmp_path / "data"
    for policy, seed in (("expert", 3000), ("expert-noise0.4", 3100)):
        assert main(["collect", "--env", "pusht", "--policy", policy, "--episodes", "1", "--seed", str(seed),
                     "--max-steps", "12", "--out", str(data), "--video-quality", "lossless"]) == 0
    episodes = load_episodes(data)
    recorded = [ep["action"].copy() for ep in episodes]
    relabel(episodes, "expert", load_spec("pusht").cameras[0].key)
    np.testing.assert_array_equal(episodes[0]["action"], recorded[0])  # the expert's own episode: its own answers
    assert np.abs(episodes[1]["action"] - recorded[1]).mean() > 1.0  # the noisy one: the expert's answers instead
    out = tmp_path / "head"
    # 12 steps succeed nowhere: nothing to imitate without relabelling, said before any training
    assert main(["train-policy", "--init", str(policy_checkpoint), "--dataset", str(data), "--out", str(out)]) != 0
    assert "no successful episode of policies ['expert']" in capsys.readouterr().err
    assert not (out / "config.json").exists()
    assert main(["train-policy", "--init", str(policy_checkpoint), "--dataset", str(data), "--out", str(out),
                 "--policies", "expert,expert-noise0.4", "--relabel-with", "expert", "--chunk", "4", "--epochs", "2",
                 "--width", "16"]) == 0
    backend = load_backend(str(out))
    assert backend.task.policy.cfg.chunk == 4 and backend.provenance["policy"]["episodes"] == 2
    assert len(read_episode_meta(data)) == 2
    policy = make_policy("pusht", f"world-model:{out}", seed=0)
    obs, _ = PushTRealEnv().reset(seed=0)
    assert policy.select_action(obs).shape == (2,)


def test_rollout_logs_the_imagined_future_beside_the_real_frames(policy_checkpoint, tmp_path, capsys):
    from cosmos3_robot.cli import main
    from cosmos3_robot.policies.structured_policy import imagined_track

    rrd = tmp_path / "policy.rrd"
    assert main(["rollout", "--env", "pusht", "--policy", f"world-model:{policy_checkpoint}#chunk=2", "--sim", "real",
                 "--max-steps", "6", "--rrd", str(rrd)]) == 0
    assert "imagined future" in capsys.readouterr().out and rrd.stat().st_size > 0
    # the track puts each chunk's k-th imagined frame at the step its k-th action leads to
    first = {"top": np.zeros((4, 4, 3), np.uint8)}
    plans = [(0, {"actions": np.zeros((2, 2)), "states": np.array([[1.0, 1], [2, 2]]),
                  "frames": {"top": np.full((2, 4, 4, 3), 7, np.uint8)}}),
             (2, {"actions": np.zeros((2, 2)), "states": np.array([[3.0, 3], [4, 4]]),
                  "frames": {"top": np.full((2, 4, 4, 3), 9, np.uint8)}})]
    frames, states = imagined_track(plans, first, np.zeros(2), 5)
    np.testing.assert_array_equal(states[:, 0], [0, 1, 2, 3, 4])
    assert [int(f[0, 0, 0]) for f in frames["top"]] == [0, 7, 7, 9, 9]


def test_shipped_heads_plan_with_dynamics_the_judge_does_not_use():
    """A planning head picks chunks by what its own dynamics imagines. If that were the judge's (the learned
    simulator the head is evaluated in), the planner would pick the chunks the judge is wrong about in its favour.
    Each shipped head's dynamics is trained apart from its task's shipped learned simulator, and its noise comes
    from the policy's own seeded stream, never the environment's."""
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.policies import StructuredPolicy
    from cosmos3_robot.tasks import REGISTRY

    pairs = [(t.policy_head, t.checkpoint) for t in REGISTRY.values() if t.policy_head and t.checkpoint]
    assert pairs, "no task ships a policy head"
    for head_name, judge_name in pairs:
        head, judge = load_backend(head_name).task.dynamics, load_backend(judge_name).task.dynamics
        h, j = head.state_dict(), judge.state_dict()
        weights = [k for k in j if k in h and h[k].shape == j[k].shape and h[k].dtype.is_floating_point
                   and h[k].numel() > 1 and j[k].std() > 0]
        same = [k for k in weights if torch.equal(h[k], j[k])]
        assert weights and not same, f"{head_name} plans with {judge_name}'s weights {same}"
        policy = StructuredPolicy(head_name, seed=3)
        assert policy._gen is not None and policy.candidates > 1  # its own torch.Generator, seeded per episode
