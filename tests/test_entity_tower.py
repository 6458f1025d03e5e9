"""The Generator tower over entity tokens: frame geometry, invariance of what an entity sees, a learned toy
push, the rest gate, per-session sampling and the disagreement it reports; the uncertainty metrics."""

import math

import numpy as np
import pytest
import torch

from cosmos3_robot.eval.metrics import auroc, uncertainty_report
from cosmos3_robot.model.entity_geometry import apply_change, matrix_to_rotvec, own_change, rotvec_to_matrix
from cosmos3_robot.model.entity_tower import EntityTower, EntityTowerConfig
from cosmos3_robot.train.entity import entity_transitions, fit_entity_tower


def config(kinds, action_kind, d, **kw):
    return EntityTowerConfig(entities=[{"name": f"e{i}", "kind": k} for i, k in enumerate(kinds)], action_dim=d,
                             action_low=[-5.0] * d, action_high=[5.0] * d, workspace_low=[-5.0] * d,
                             workspace_high=[5.0] * d, action_kind=action_kind, **kw)


@pytest.mark.parametrize("kind,dims", [("se2", 3), ("point2", 2), ("se3", 6), ("point3", 3)])
def test_change_round_trip(kind, dims):
    g = torch.Generator().manual_seed(0)
    state = torch.randn(64, dims, generator=g)
    if kind == "se2":
        state[:, 2] = torch.rand(64, generator=g) * 6 - 3
    change = torch.randn(64, dims, generator=g) * 0.4
    torch.testing.assert_close(own_change(state, apply_change(state, change, kind), kind), change, atol=1e-4, rtol=0)


def random_rigid(d, g):
    if d == 2:
        a = float(torch.rand(1, generator=g)) * 2 * math.pi
        R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return R, torch.randn(2, generator=g), a
    w = torch.randn(3, generator=g)
    return rotvec_to_matrix(w), torch.randn(3, generator=g), w


def move(state, kind, R, t, turn):
    """A rigid motion of the whole scene applied to one entity's state."""
    d = R.shape[0]
    p = state[..., :d] @ R.T + t
    if kind == "se2":
        return torch.cat([p, state[..., 2:3] + turn], -1)
    if kind == "se3":
        return torch.cat([p, matrix_to_rotvec(R @ rotvec_to_matrix(state[..., 3:6]))], -1)
    return p


@pytest.mark.parametrize("kinds,action_kind,d", [(["point2", "se2"], "point2", 2), (["point3", "se3", "se3"], "point3", 3)])
def test_entities_see_the_same_scene_however_it_lies(kinds, action_kind, d):
    """Without place features, what an oriented entity sees is invariant to a rigid motion of the whole scene
    (a push looks the same wherever and however the object lies); a point's frame is translated, not turned,
    so what it sees is invariant to translations."""
    torch.manual_seed(0)
    tower = EntityTower(config(kinds, action_kind, d, place_features=False, dim=32, ffn_dim=32, head_width=32))
    g = torch.Generator().manual_seed(1)
    dims = {"point2": 2, "se2": 3, "point3": 3, "se3": 6}

    def scene():
        return [torch.randn(8, dims[k], generator=g) * 0.7 for k in kinds]

    now, prev = scene(), scene()
    action, prev_action = torch.randn(8, d, generator=g), torch.randn(8, d, generator=g)
    a = tower.tokens(now, prev, action, prev_action)[:, : len(kinds)]
    R, t, turn = random_rigid(d, g)
    turned = [i for i, k in enumerate(kinds) if k.startswith("se")]
    for R_, turn_ in ((R, turn), (torch.eye(d), 0.0 if d == 2 else torch.zeros(3))):
        moved = lambda xs: [move(x, k, R_, t, turn_) for x, k in zip(xs, kinds)]  # noqa: E731
        b = tower.tokens(moved(now), moved(prev), action @ R_.T + t, prev_action @ R_.T + t)[:, : len(kinds)]
        keep = turned if R_ is R else list(range(len(kinds)))
        torch.testing.assert_close(a[:, keep], b[:, keep], atol=2e-4, rtol=0)
    c = tower.tokens(now, prev, action + 0.3, prev_action)[:, : len(kinds)]  # and they do see the action
    assert (a - c).abs().max() > 1e-3


def toy_episodes(n, seed):
    """A point pusher in the plane that moves halfway to its target each step, and a disk (se2; it slides
    and turns) that is shoved along when the pusher comes within 1 unit and rests otherwise."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        pusher, disk = rng.uniform(-2, 2, 2), np.array([*rng.uniform(-1, 1, 2), rng.uniform(-3, 3)])
        P, D, A = [pusher.copy()], [disk.copy()], []
        for _ in range(20):
            a = np.clip(disk[:2] + rng.normal(0, 1.0, 2), -5, 5)
            A.append(a)
            step = 0.5 * (a - pusher)
            pusher = pusher + step
            if np.linalg.norm(pusher - disk[:2]) < 1.0:
                disk = disk + np.array([*step, 0.2 * step[0]])
            P.append(pusher.copy())
            D.append(disk.copy())
        eps.append({"states": {"e0": np.array(P), "e1": np.array(D)}, "action": np.array(A), "rest_action": P[0]})
    return eps


@pytest.fixture(scope="module")
def toy_tower():
    torch.manual_seed(0)
    tower = EntityTower(config(["point2", "se2"], "point2", 2, length_scale=1.0, dim=32, layers=2, ffn_dim=64,
                               head_width=64, samples=4))
    info = fit_entity_tower(tower, entity_transitions(toy_episodes(150, 0), ["e0", "e1"]), epochs=50, batch=256,
                            seed=0, progress=False)
    return tower, info


def test_the_tower_learns_a_push_and_keeps_resting_bodies_still(toy_tower):
    tower, info = toy_tower
    assert 0.05 < info["moving_share"][1] < 0.95  # the toy has both pushes and rests
    data = entity_transitions(toy_episodes(40, 1), ["e0", "e1"])
    nxt, disagreement = tower.sample(data["now"], data["prev"], data["action"], data["prev_action"],
                                     generator=torch.Generator().manual_seed(0))
    moved = (data["next"][1] - data["now"][1]).abs().sum(-1) > 1e-6
    err = (nxt[1][:, :2] - data["next"][1][:, :2]).norm(dim=-1)
    still = (data["now"][1][:, :2] - data["next"][1][:, :2]).norm(dim=-1)
    assert err[moved].mean() < 0.5 * still[moved].mean()  # beats "no change" where the disk is pushed
    pusher_err = (nxt[0] - data["next"][0]).norm(dim=-1).mean()
    assert pusher_err < 0.5 * (data["now"][0] - data["next"][0]).norm(dim=-1).mean()
    rest = ~moved
    exact = (nxt[1][rest] == data["now"][1][rest]).all(-1).float().mean()
    assert exact > 0.85  # the gate holds resting disks exactly where they are
    assert disagreement.shape == (len(err),) and torch.isfinite(disagreement).all() and (disagreement >= 0).all()


def test_sampling_is_per_session_and_seeded(toy_tower):
    tower, _ = toy_tower
    data = entity_transitions(toy_episodes(2, 3), ["e0", "e1"])
    args = (data["now"], data["prev"], data["action"], data["prev_action"])
    noise = torch.randn(len(data["action"]), 4, 2, tower.max_change, generator=torch.Generator().manual_seed(5))
    full, d_full = tower.sample(*args, noise=noise)
    one, d_one = tower.sample(*[[x[3:4] for x in a] if isinstance(a, list) else a[3:4] for a in args],
                              noise=noise[3:4])
    torch.testing.assert_close(one[1], full[1][3:4], atol=1e-5, rtol=0)
    torch.testing.assert_close(d_one, d_full[3:4], atol=1e-5, rtol=0)
    _, d_single = tower.sample(*args, noise=noise[:, :1])  # one sample: no spread to report
    assert (d_single == 0).all()


def test_sampling_runs_the_flow_head_it_trains(toy_tower):
    """`sample` computes the head's entity and time inputs once per step; its result is that of Euler steps
    through `velocity`, the function the loss trains."""
    from cosmos3_robot.model.flow import euler_schedule

    tower, _ = toy_tower
    data = entity_transitions(toy_episodes(2, 4), ["e0", "e1"])
    args = (data["now"], data["prev"], data["action"], data["prev_action"])
    noise = torch.randn(len(data["action"]), 4, 2, tower.max_change, generator=torch.Generator().manual_seed(6))
    nxt, _ = tower.sample(*args, noise=noise)
    with torch.no_grad():
        h = tower.encode(*args)
        hk, x = h[:, None].expand(*noise.shape[:3], h.shape[-1]), noise.clone()
        times = euler_schedule(tower.cfg.flow_steps)
        for t0, t1 in zip(times[:-1], times[1:]):
            x = x + (t1 - t0) * tower.velocity(hk, x, t0.expand(noise.shape[:3]))
        moving = (tower.gate(h)[..., 0] >= 0).float()
        change = (x * tower.change_mask).mean(1) * tower.change_scale * moving[..., None]
    torch.testing.assert_close(nxt[1], apply_change(data["now"][1], change[:, 1], "se2"), atol=1e-5, rtol=0)
    torch.testing.assert_close(nxt[0], apply_change(data["now"][0], change[:, 0, :2], "point2"), atol=1e-5, rtol=0)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="kind"):
        config(["box"], None, 2)
    with pytest.raises(ValueError, match="step_with"):
        config(["se2"], None, 2, step_with="median")
    with pytest.raises(ValueError, match="entities"):
        EntityTowerConfig(entities=[], action_dim=1, action_low=[0], action_high=[1], workspace_low=[0],
                          workspace_high=[1])


def test_auroc_and_uncertainty_report():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert math.isnan(auroc([0.1, 0.2], [0, 0]))
    rep = uncertainty_report([np.array([1, 1, 0, 0])], [np.array([1, 0, 0, 1])], [np.array([0.1, 0.9, 0.2, 0.8])],
                             threshold=0.5)
    assert rep["auroc"] == 1.0 and rep["mismatches"] == 2 and rep["flagged"] == 2
    assert rep["mismatch_rate_flagged"] == 1.0 and rep["mismatch_rate_unflagged"] == 0.0
