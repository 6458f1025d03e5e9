"""Trust in a learned simulator's verdict: success probabilities from independent noise streams, and real
success estimated by prediction-powered inference from a few paired real episodes (`eval/trust.py`)."""

import json

import numpy as np
import pytest

from cosmos3_robot.errors import UserError
from cosmos3_robot.eval.episodes import run_learned
from cosmos3_robot.eval.policy_eval import EvalConfig, evaluate, write_report
from cosmos3_robot.eval.trust import (estimate_real_success, outcome_trust, ppi_mean, real_trials_for_width,
                                      wilson_interval)
from cosmos3_robot.sim import LearnedVectorEnv
from cosmos3_robot.tasks.pusht import PushTRealEnv, make_pusht_policy

START = "cosmos3_robot/PushTReal-v0"


def test_ppi_is_the_real_mean_without_predictions_and_gains_from_good_ones():
    rng = np.random.default_rng(0)
    y = (rng.random(10) < 0.6).astype(float)
    plain = ppi_mean(y, np.zeros(10), np.zeros(40))  # predictions that say nothing: lambda 0, the real mean
    assert plain["lambda"] == 0 and plain["value"] == pytest.approx(y.mean())
    # predictions that track the outcome (a probability near it) on every state: narrower, near the truth
    truth = (rng.random(50) < 0.6).astype(float)
    f = np.clip(truth + rng.normal(0, 0.1, 50), 0, 1)
    good = ppi_mean(truth[:10], f[:10], f[10:])
    assert good["lambda"] > 0.5
    assert good["ci95"][1] - good["ci95"][0] < plain["ci95"][1] - plain["ci95"][0]
    assert good["ci95"][0] <= truth.mean() <= good["ci95"][1]
    with pytest.raises(UserError, match="real-budget"):
        ppi_mean(y[:1], f[:1], f[1:])


def test_ppi_corrects_a_biased_simulator_and_covers():
    """A simulator that overrates every state by 0.3 (and is noisy): the estimate removes the bias through the
    paired real episodes, and its 95% interval covers the true rate in about 95% of 400 draws."""
    rng = np.random.default_rng(1)
    covered, values = 0, []
    for _ in range(400):
        p_real = rng.uniform(0.2, 0.8, 50)  # each initial state's real success probability
        y = (rng.random(50) < p_real).astype(float)
        f = np.clip(p_real + 0.3 + rng.normal(0, 0.1, 50), 0, 1)
        est = ppi_mean(y[:10], f[:10], f[10:])
        covered += est["ci95"][0] <= p_real.mean() <= est["ci95"][1]
        values.append(est["value"] - p_real.mean())
    assert abs(np.mean(values)) < 0.03  # unbiased, where the simulator alone is 0.3 off
    assert covered / 400 >= 0.9


def test_wilson_and_the_trials_an_interval_is_worth():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    # an interval as wide as Wilson's at 10 trials is worth 10 trials
    assert real_trials_for_width(0.5, hi - lo) == pytest.approx(10, rel=1e-3)
    assert real_trials_for_width(0.5, 0.1) > 300 and real_trials_for_width(0.5, 0.0) == float("inf")
    est = estimate_real_success(np.r_[np.ones(5), np.zeros(5), np.full(40, 0.5)], np.r_[np.ones(5), np.zeros(5)])
    assert est["real_episodes"] == 10 and est["real_only"]["value"] == 0.5
    assert 0 <= est["ci95"][0] <= est["value"] <= est["ci95"][1] <= 1
    with pytest.raises(UserError, match="first learned"):
        estimate_real_success(np.ones(3), np.ones(5))


def test_outcome_trust_scores_probabilities_against_real_outcomes():
    real = [np.array([1.0, 0, 1, 0])]
    learned = [np.array([1.0, 1, 1, 0])]  # episode 1 mismatches
    sure = outcome_trust([np.array([1.0, 0.5, 1, 0])], learned, real)  # unsure exactly where it is wrong
    assert sure["mismatches"] == 1 and sure["auroc"] == 1.0
    assert sure["brier"] == pytest.approx(0.25 / 4) and sure["brier_single_sample"] == pytest.approx(0.25)
    blind = outcome_trust([np.array([0.5, 1.0, 0.5, 0.5])], learned, real)
    assert blind["auroc"] == 0.0
    # 4 samples: after stream 0's success in episode 1 the other three all failed (p' = 0): mismatch likely
    q = outcome_trust([np.array([1.0, 0.25, 0.75, 0.25])], learned, real, samples=4)
    assert q["auroc_mismatch_probability"] == 1.0
    assert "auroc_mismatch_probability" not in sure


def test_noise_streams_roll_the_same_start_again(tower_checkpoint):
    """Stream 0 is the default run; other streams start from the same frame and sample other dynamics."""
    def run(options):
        env = LearnedVectorEnv(2, checkpoint=tower_checkpoint, start=START, max_episode_steps=6)
        obs0, _ = env.reset(seed=[3, 3], options=options)
        obs, *_ = env.step(np.full((2, 2), 256.0))
        return obs0, obs

    (a0, a), (b0, b) = run(None), run({"noise_stream": [0, 1]})
    for k in a0:
        np.testing.assert_array_equal(b0[k], a0[k])
    np.testing.assert_array_equal(b["observation.state"][0], a["observation.state"][0])
    assert not np.array_equal(b["observation.image"][1], a["observation.image"][1])
    with pytest.raises(UserError, match="noise_stream"):
        run({"noise_stream": [0, -1]})


def test_samples_give_probabilities_and_keep_the_single_run(tower_checkpoint):
    make_vec = lambda n: LearnedVectorEnv(n, checkpoint=tower_checkpoint, start=START,  # noqa: E731
                                          max_episode_steps=6, success_threshold=0.0)
    policy = lambda name, seed: make_pusht_policy(name, seed=seed)  # noqa: E731
    one = run_learned(policy, "expert-noise0.4", [0, 1, 2], make_vec)
    many = run_learned(policy, "expert-noise0.4", [0, 1, 2], make_vec, batch=4, samples=3)
    for key in ("success", "return", "length", "disagreement"):
        np.testing.assert_array_equal(many[key], one[key])
    assert many["probability"].shape == (3,) and ((many["probability"] >= 0) & (many["probability"] <= 1)).all()


def test_members_take_the_samples_in_turn(tower_checkpoint):
    """Sample j of a seed runs on member j mod M, on its noise stream j div M; sample 0 is the ordinary run."""
    seen = {0: [], 1: []}

    def member(m):
        def make(n):
            env = LearnedVectorEnv(n, checkpoint=tower_checkpoint, start=START, max_episode_steps=6,
                                   success_threshold=0.0)
            reset = env.reset

            def recorded(*, seed=None, options=None):
                seen[m].append((list(seed), list(options["noise_stream"])))
                return reset(seed=seed, options=options)

            env.reset = recorded
            return env
        return make

    policy = lambda name, seed: make_pusht_policy(name, seed=seed)  # noqa: E731
    plain = lambda n: LearnedVectorEnv(n, checkpoint=tower_checkpoint, start=START,  # noqa: E731
                                       max_episode_steps=6, success_threshold=0.0)
    one = run_learned(policy, "expert-noise0.4", [0, 1, 2], plain)
    out = run_learned(policy, "expert-noise0.4", [0, 1, 2], [member(0), member(1)], samples=5)
    assert seen[0] == [([0, 1, 2] * 3, [0, 0, 0, 1, 1, 1, 2, 2, 2])]  # samples 0, 2, 4
    assert seen[1] == [([0, 1, 2] * 2, [0, 0, 0, 1, 1, 1])]  # samples 1, 3
    for key in ("success", "return", "length", "disagreement"):
        np.testing.assert_array_equal(out[key], one[key])
    assert out["probability"].shape == (3,)


def test_eval_with_a_real_budget_runs_only_k_real_episodes(tower_checkpoint, tmp_path):
    calls = []

    class CountingReal(PushTRealEnv):
        def reset(self, *, seed=None, options=None):
            calls.append(seed)
            return super().reset(seed=seed, options=options)

    seeds = [0, 1, 2, 3, 4]
    report = evaluate(["expert", "random"], lambda name, seed: make_pusht_policy(name, seed=seed), seeds,
                      make_vec_env=lambda n: LearnedVectorEnv(n, checkpoint=tower_checkpoint, start=START,
                                                              max_episode_steps=6),
                      real_env=CountingReal(max_episode_steps=6),
                      config=EvalConfig(progress=False, n_boot=20, samples=2, real_budget=3))
    assert sorted(calls) == [0, 0, 1, 1, 2, 2]  # 2 policies x the first 3 seeds, never seeds 3 and 4
    assert report["real_seeds"] == [0, 1, 2]
    for name in ("expert", "random"):
        row = report["policies"][name]
        assert len(row["learned"]["probability_per_episode"]) == 5 and len(row["real"]["episodes"]) == 3
        e = row["estimate"]
        assert e["real_episodes"] == 3 and 0 <= e["ci95"][0] <= e["ci95"][1] <= 1
    assert report["trust"]["episodes"] == 6 and report["trust"]["samples"] == 2
    paths = write_report(report, tmp_path)
    text = paths["markdown"].read_text()
    assert "prediction-powered" in text and "Brier" in text
    assert json.loads(paths["json"].read_text())["policies"]["expert"]["estimate"]["real_episodes"] == 3
    assert paths["rerun"].name == "eval_trust.rrd" and paths["rerun"].stat().st_size > 0
    with pytest.raises(UserError, match="real-budget"):
        evaluate(["expert"], lambda name, seed: make_pusht_policy(name, seed=seed), seeds,
                 config=EvalConfig(progress=False, real_budget=6))


def test_cli_refuses_a_real_budget_above_the_episodes(tmp_path, capsys):
    from cosmos3_robot.cli import main

    assert main(["eval", "--policies", "expert", "--episodes", "3", "--real-budget", "5", "--out", str(tmp_path)]) == 2
    assert "--real-budget 5 is more than --episodes 3" in capsys.readouterr().err
    assert main(["eval", "--policies", "expert", "--samples", "0", "--out", str(tmp_path)]) == 2
    assert "--samples 0" in capsys.readouterr().err
    assert main(["eval", "--policies", "expert", "--samples", "2", "--members", "pusht_fast,pusht_small",
                 "--out", str(tmp_path)]) == 2
    assert "--samples 3 or more" in capsys.readouterr().err
    assert main(["eval", "--policies", "expert", "--task", "pusht", "--samples", "2", "--members",
                 "aloha_transfer_cube", "--episodes", "1", "--out", str(tmp_path)]) == 2
    assert "--members aloha_transfer_cube" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()


def test_pseudo_pairs_keep_an_all_alike_sample_from_a_zero_width_interval():
    y, f = np.ones(5), np.ones(5)  # five real successes, each predicted: no spread anywhere
    bare = ppi_mean(y, f, np.ones(45), pseudo=0)
    assert bare["ci95"][0] == bare["ci95"][1] == 1.0
    padded = ppi_mean(y, f, np.ones(45), pseudo=1)
    assert padded["value"] == 1.0 and padded["ci95"][0] < 0.9  # the point estimate is untouched
    rng = np.random.default_rng(1)
    y = (rng.random(20) < 0.5).astype(float)
    fl, fu = np.clip(y + rng.normal(0, 0.3, 20), 0, 1), rng.random(80)
    padded, bare = ppi_mean(y, fl, fu, pseudo=1), ppi_mean(y, fl, fu, pseudo=0)
    assert padded["value"] == bare["value"] and padded["lambda"] == bare["lambda"]
    assert bare["se"] < padded["se"] < 1.5 * bare["se"]  # wider, by the two pseudo pairs' share at K = 20


def test_the_report_says_where_the_wall_time_went(tower_checkpoint, tmp_path):
    seeds = [0, 1]
    report = evaluate(["expert", "random"], lambda name, seed: make_pusht_policy(name, seed=seed), seeds,
                      make_vec_env=lambda n: LearnedVectorEnv(n, checkpoint=tower_checkpoint, start=START,
                                                              max_episode_steps=5),
                      real_env=PushTRealEnv(max_episode_steps=5), config=EvalConfig(progress=False, n_boot=10))
    w = report["wall_s"]
    assert set(w) == {"learned", "real", "waiting_for_real", "total"}
    assert w["learned"] > 0 and w["real"] > 0 and w["learned"] + w["real"] <= w["total"] + 0.05
    assert "Wall time: learned" in write_report(report, tmp_path)["markdown"].read_text()
