import numpy as np
import pytest

from cosmos3_robot.eval.metrics import bootstrap_ci, mmrv, pearson, spearman


def test_pearson_and_spearman_match_hand_values():
    x, y = [1, 2, 3, 4], [2, 4, 5, 9]
    # by hand: mean x 2.5, mean y 5; cov = (-1.5*-3 + -0.5*-1 + 0.5*0 + 1.5*4)/n = 11/4; sd x = sqrt(5/4), sd y = sqrt(26/4)
    assert pearson(x, y) == pytest.approx(11 / np.sqrt(5 * 26))
    assert spearman(x, y) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: x ranks [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_mmrv_worked_example():
    real = [0.9, 0.6, 0.2]
    assert mmrv([0.8, 0.5, 0.1], real) == 0.0  # same order, different values: no violation
    # learned swaps policies 0 and 1: violation |0.9 - 0.6| = 0.3 for both, none for policy 2
    assert mmrv([0.5, 0.8, 0.1], real) == pytest.approx((0.3 + 0.3 + 0.0) / 3)
    # learned puts policy 2 on top: i=0 worst 0.7 (vs 2), i=1 worst 0.4 (vs 2), i=2 worst 0.7 (vs 0)
    assert mmrv([0.5, 0.4, 0.9], real) == pytest.approx((0.7 + 0.4 + 0.7) / 3)


def simpler_mmrv(perf_sim, perf_real):
    """SIMPLER's reference loop (simpler_env/utils/metrics.py), written out to compare against."""
    out = []
    for i in range(len(perf_sim)):
        worst = 0.0
        for j in range(len(perf_sim)):
            if (perf_sim[i] > perf_sim[j]) != (perf_real[i] > perf_real[j]):
                worst = max(worst, abs(perf_real[i] - perf_real[j]))
        out.append(worst)
    return float(np.mean(out))


def test_mmrv_ties_as_simpler_defines_them():
    # a learned tie costs the real gap once (from the better policy's side): SIMPLER gives 0.3 here
    assert mmrv([0.5, 0.5], [0.2, 0.8]) == pytest.approx(0.3)
    assert mmrv([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4)
    assert mmrv([0.2, 0.7], [0.4, 0.4]) == 0.0  # real tie: any learned order is fine
    rng = np.random.default_rng(0)
    for _ in range(50):
        sim, real = rng.integers(0, 5, 6) / 4, rng.integers(0, 5, 6) / 4  # many ties
        assert mmrv(sim, real) == pytest.approx(simpler_mmrv(sim, real))
    with pytest.raises(ValueError, match="equal-length"):
        mmrv([0.1, 0.2], [0.3])


def test_bootstrap_interval_contains_value_and_is_seeded():
    rng = np.random.default_rng(0)
    real = [rng.random(50) < p for p in (0.9, 0.6, 0.3, 0.1)]
    learned = [rng.random(50) < p for p in (0.8, 0.65, 0.25, 0.05)]
    v, lo, hi = bootstrap_ci(learned, real, "spearman", n_boot=300)
    assert lo <= v <= hi and hi <= 1.0
    assert bootstrap_ci(learned, real, "spearman", n_boot=300) == (v, lo, hi)
    v, lo, hi = bootstrap_ci(learned, real, "mmrv", n_boot=300)
    assert 0.0 <= lo <= v + 1e-9 and hi >= v - 1e-9


def test_judge_threshold_calibration_picks_the_separating_threshold():
    from cosmos3_robot.eval.judge_calibration import best_threshold

    rng = np.random.default_rng(0)
    # successes score 0.80-0.95, failures 0.0-0.70: any threshold in (0.70, 0.80] separates them
    probs = np.concatenate([rng.uniform(0.80, 0.95, 40), rng.uniform(0.0, 0.70, 200)])
    labels = np.r_[np.ones(40, bool), np.zeros(200, bool)]
    res = best_threshold(probs, labels)
    assert 0.70 < res["threshold"] <= 0.80 and res["f1"] == 1.0 and res["fpr"] == 0.0
    assert res["threshold"] == max(t for t, f1, _, _ in res["table"] if f1 == 1.0)  # ties: the higher one
    # one failure scored high costs precision, not the choice
    probs[-1] = 0.99
    assert 0.70 < best_threshold(probs, labels)["threshold"] <= 0.80
    with pytest.raises(ValueError, match="both successes and failures"):
        best_threshold(probs, np.zeros(len(probs), bool))
