import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmos3_robot.embodiments import Normalizer, compute_stats, load_spec, normalizers_from_stats

MODES = ["quantile", "mean_std", "min_max", "identity"]


def data(seed=0, n=500, d=4):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[1, -2, 5, 0][:d], scale=[0.1, 3, 0.5, 2][:d], size=(n, d))


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_every_mode(mode):
    x = data()
    norm = Normalizer.fit(x, mode)
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(x)), x, atol=1e-10)


def test_modes_map_to_the_documented_values():
    x = data()
    stats = compute_stats(x)
    q = Normalizer(stats, "quantile").normalize(np.stack([stats["q01"], stats["q99"]]))
    np.testing.assert_allclose(q, [[-1] * 4, [1] * 4], atol=1e-12)
    mm = Normalizer(stats, "min_max").normalize(np.stack([stats["min"], stats["max"]]))
    np.testing.assert_allclose(mm, [[-1] * 4, [1] * 4], atol=1e-12)
    z = Normalizer(stats, "mean_std").normalize(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-10)
    np.testing.assert_array_equal(Normalizer(stats, "identity").normalize(x), x)


def test_zero_variance_dimension_is_finite():
    x = data()
    x[:, 2] = 3.0
    for mode in MODES:
        y = Normalizer.fit(x, mode).normalize(x)
        assert np.all(np.isfinite(y)), mode
        if mode != "identity":
            np.testing.assert_allclose(y[:, 2], 0.0)


def test_clamp_and_exact_inverse_inside_range():
    x = data()
    norm = Normalizer.fit(x, "quantile", clamp=1.0)
    y = norm.normalize(x)
    assert y.min() == -1.0 and y.max() == 1.0
    stats = compute_stats(x)
    inside = x[np.all((x >= stats["q01"]) & (x <= stats["q99"]), axis=1)]
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(inside)), inside, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), modes=st.lists(st.sampled_from(MODES), min_size=4, max_size=4))
def test_per_dim_modes_round_trip(seed, modes):
    x = data(seed)
    norm = Normalizer.fit(x, modes)
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(x)), x, atol=1e-9)


def test_per_field_modes_from_spec_and_lerobot_stats_json(tmp_path):
    spec = load_spec("droid")
    rng = np.random.default_rng(0)
    actions = np.concatenate([rng.normal(0, 0.01, (300, 9)), rng.uniform(0, 1, (300, 1))], axis=1)
    state = rng.normal(size=(300, 14))
    # LeRobot meta/stats.json layout: {feature: {stat: list}}
    stats = {"action": {k: v.tolist() for k, v in compute_stats(actions).items()},
             "observation.state": {k: v.tolist() for k, v in compute_stats(state).items()}}
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats))
    norms = normalizers_from_stats(spec, json.loads(path.read_text()))
    a = norms["action"]
    assert a.modes[:9] == ("quantile",) * 9 and a.modes[9] == "min_max"  # gripper min_max, poses quantile
    y = a.normalize(actions)
    assert y[:, 9].min() == pytest.approx(-1) and y[:, 9].max() == pytest.approx(1)
    np.testing.assert_allclose(a.unnormalize(y), actions, atol=1e-12)
    assert norms["observation.state"].dims == 14


def test_torch_tensors_keep_dtype_and_match_numpy():
    x = data()
    norm = Normalizer.fit(x, "quantile")
    t = torch.tensor(x, dtype=torch.float32)
    y = norm.normalize(t)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), norm.normalize(x), atol=1e-5)
    torch.testing.assert_close(norm.unnormalize(y), t, atol=1e-5, rtol=1e-5)


def test_dict_round_trip():
    norm = Normalizer.fit(data(), ["quantile", "min_max", "mean_std", "identity"], clamp=1.5, feature="action")
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    x = data(1)
    np.testing.assert_array_equal(again.normalize(x), norm.normalize(x))


def test_errors_name_feature_and_stat():
    stats = compute_stats(data())
    with pytest.raises(KeyError, match="'action'.*needs stat 'q01'"):
        Normalizer({k: v for k, v in stats.items() if k != "q01"}, "quantile", feature="action")
    with pytest.raises(ValueError, match="unknown normalization mode"):
        Normalizer(stats, "zscore")
    with pytest.raises(ValueError, match="'action': stat 'std' contains NaN"):
        Normalizer({**stats, "std": np.full(4, np.nan)}, "mean_std", feature="action")
    with pytest.raises(ValueError, match="last dimension is 3, expected 4"):
        Normalizer(stats, "quantile").normalize(np.zeros((2, 3)))
    with pytest.raises(KeyError, match="no feature 'action'"):
        normalizers_from_stats(load_spec("pusht"), {"observation.state": {}})
