"""The learned transfer-cube simulator's recipe (scripts/train_aloha_transfer_cube.sh, or
`cosmos3-robot train-sim --task aloha_transfer_cube`):
1. collect: episodes of `expert-mix` (and a few `random`) in gym-aloha's scene, one .npz per episode (a rerun
   skips finished ones): the robot state, the action, the top frame at the renderer's size and the cube's
   centre. The cube's centre is read from the scene's physics: gym-aloha has one camera, `top`, and a lifted
   cube's height cannot be read off it; the learned scene's reset still finds the cube in the top frame.
2. fit: the joint servo, the grasp numbers (`estimate_grasp`), the Generator tower over both hands and the
   cube, and the keypoint renderer; write a structured checkpoint.

    python -m cosmos3_robot.tasks.aloha.train --data DIR --out DIR [--collect N] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...embodiments import load_spec
from ...errors import UserError
from ...model.checkpoint import refuse_overwrite
from ...model.keypoint_renderer import KeypointRendererConfig
from ...train import JsonlLogger, fit_servo
from ...train.entity import entity_transitions, fit_entity_tower
from ...train.renderers import fit_keypoint_renderer
from .expert import CUBE_HALF
from .structured import (CUBE, ENTRY_POINT, GRIPS, RENDER_SIZE, AlohaTransferCubeWorld, finger_slide, grasp_points,
                         hands, task_config)


def _collect(data: Path, episodes: int, seed: int = 1000, policy: str = "expert-mix", max_steps: int = 250,
            progress: bool = True, frames: bool = True) -> list[Path]:
    """Episodes `seed`..`seed + episodes - 1` of `policy` into `data/<policy>_<seed>.npz` (finished ones kept).
    frames=False: state-only episodes (no frames; the scene renders only each first frame, which the scripted
    policies read), for the numbers that need many episodes and no pixels (`estimate_slip`)."""
    from ...datasets.video import resize_to
    from .. import make_policy, make_real_env

    data.mkdir(parents=True, exist_ok=True)
    env, out = None, []
    for s in tqdm(range(seed, seed + episodes), desc=f"collect {policy}", disable=not progress):
        path = data / f"{policy}_{s}.npz"
        out.append(path)
        if path.exists():
            continue
        env = env or make_real_env("aloha_transfer_cube", max_episode_steps=max_steps,
                                   frames="every" if frames else "first")
        pol = make_policy("aloha_transfer_cube", policy, seed=s)
        pol.reset(s)
        obs, info = env.reset(seed=s)
        states, actions, images, cubes, success = [], [], [], [], False
        for _ in range(max_steps):
            states.append(obs["observation.state"])
            images.append(resize_to(obs["observation.images.top"][None], *RENDER_SIZE)[0] if frames else None)
            cubes.append(info["state"][16:19])  # MuJoCo's qpos: the arms' 16, then the cube's free joint
            action = pol.select_action(obs)
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            success = success or bool(info["is_success"])
            if terminated or truncated:
                break
        states.append(obs["observation.state"])
        images.append(resize_to(obs["observation.images.top"][None], *RENDER_SIZE)[0] if frames else None)
        cubes.append(info["state"][16:19])
        tmp = path.with_suffix(".tmp.npz")
        arrays = {"frames": np.asarray(images, np.uint8)} if frames else {}
        np.savez_compressed(tmp, state=np.asarray(states, np.float32), action=np.asarray(actions, np.float32),
                            cube=np.asarray(cubes, np.float32), success=success, **arrays)
        tmp.replace(path)  # an interrupted episode leaves no file
    if env is not None:
        env.close()
    return out


def load(data: Path, frames: bool = True) -> list[dict]:
    """Collected episodes -> {"world" (T, W), "action" (T-1, 14), "frames" (T, h, w, 3) at the renderer's size
    (frames=False: none; state-only episodes), "success", "name"}."""
    from ...datasets.video import resize_to

    files = sorted(Path(data).glob("*.npz"))
    files = [f for f in files if not f.name.endswith(".tmp.npz")]
    if not files:
        raise UserError(f"{data}: no collected episodes (*.npz); run with --collect N first")
    out = []
    for f in files:
        with np.load(f) as z:  # plain arrays: np.load refuses pickled objects by default
            world = np.concatenate([z["state"], z["cube"]], -1).astype(np.float32)
            images = None
            if frames:
                if "frames" not in z:
                    raise UserError(f"{f}: a state-only episode (no frames); the renderer's fit needs episodes "
                                     "collected with frames")
                images = z["frames"]
                if images.shape[1:3] != RENDER_SIZE:  # collected for a renderer of another size
                    images = resize_to(images, *RENDER_SIZE)
            out.append({"world": world, "action": z["action"].astype(np.float64), "frames": images,
                        "success": bool(z["success"]), "name": f.stem})
    return out


def estimate_grasp(world: AlohaTransferCubeWorld, episodes: list[dict]) -> dict:
    """The grasp constraint's numbers from the collected episodes, in each hand's frame from its grasp point.
    - right (the hand that carries): the steps where a lifted cube (over 2 cm above its rest) moved with it
      (within 3 mm of the hand's own move over the step) under a closing command: where the cube sits (median
      `offset`) and the band of gripper readings that hold it (1st to 99th percentile, 0.03 wider).
    - left (the hand that takes it): gym-aloha's success is the left fingers' first touch of the cube in the air,
      and an episode ends there, so the left hand never carries in the data: its numbers come from the last
      step of every successful episode (the touch), in the hand's frame: how deep between the fingers the cube
      sat (`depth`, x: the touches' range, 5 mm wider) and how far off the fingers' plane (`height`, |z|). The
      closing fingers centre the cube between them before both touch it: `fit_touch` finds how centred
      (`centred`, y) and how closed (`slide`) they are at a touch. The learned step pushes a cube between
      closing fingers towards their middle accordingly.
    - the right hand's `box` (where the cube may sit from `offset`) is then `catch_box`: from its closes that
      carried the cube and those that missed, not from the carries.
    - `fall`: g dt^2 at 50 Hz (m per step per step: a free cube falls until the table stops it)."""
    r4 = lambda x: round(float(x), 4)  # noqa: E731
    rel, readings, heights = [], [], []
    for ep in episodes:
        w, a = ep["world"], ep["action"]
        at, cube = hands(world.chains, w), w[:, CUBE]
        heights.append(at[0][:, :, 2].ravel())  # both grasp points, for the table's `floor`
        pts, R = at[0][:, 1], at[1][:, 1]
        moved = np.linalg.norm((cube[1:] - cube[:-1]) - (pts[1:] - pts[:-1]), axis=-1) < 0.003
        lifted = cube[:-1, 2] > CUBE_HALF + 0.02
        closing = a[: len(w) - 1, GRIPS[1]] < 0.5
        near = np.linalg.norm(cube[:-1] - pts[:-1], axis=-1) < 0.06
        sel = np.flatnonzero(moved & lifted & closing & near)
        rel.append(np.einsum("nji,nj->ni", R[sel], cube[sel] - pts[sel]))
        readings.append(w[sel, GRIPS[1]])
    rel, readings = np.concatenate(rel), np.concatenate(readings)
    done = [ep["world"][-1:] for ep in episodes if ep["success"]]
    if len(rel) < 20 or len(done) < 3:
        raise UserError(f"estimate_grasp: {len(rel)} steps where the right hand carries the cube and {len(done)} "
                         "successful hand-overs; the data needs 20 and 3 (collect more expert-mix episodes)")
    offset = np.median(rel, 0)
    lo, hi = np.percentile(readings, [1, 99])
    out = {"right": {"offset": [r4(x) for x in offset], "hold": [r4(lo - 0.03), r4(hi + 0.03)], "steps": int(len(rel))}}
    touch = np.concatenate(done)
    rel_left = world.cube_in_hands(touch).reshape(-1, 2, 3)[:, 0]
    out["left"] = {"depth": [r4(rel_left[:, 0].min() - 0.005), r4(rel_left[:, 0].max() + 0.005)],
                   "height": r4(np.abs(rel_left[:, 2]).max() + 0.005)}
    out["left"].update(fit_touch(world, episodes, out["left"]), touches=len(done))
    out["right"]["box"] = catch_box(world, episodes, out["right"]["offset"])
    out["fall"] = round(9.81 * 0.02**2, 5)
    out["floor"] = r4(np.percentile(np.concatenate(heights), 1) - 0.005)  # the table, under both hands
    return out


SLIP_ACC = [0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08]  # m per step per step (50 Hz): the hazard's bins
SLIP_WINDOW = 5  # steps: a loss is a hold not regained for this long under a closing command


def estimate_slip(world: AlohaTransferCubeWorld, episodes: list[dict], min_steps: int = 5) -> dict:
    """How often a shaken right hand loses the cube, from the scene's own episodes. Over the steps where the right
    hand holds the cube by the learned step's rule (`holding`, on the recorded states) and the left does not
    touch it: the fraction after which the hold is not regained for `SLIP_WINDOW` steps while the command stays
    closing, per bin of the grasp point's acceleration (`SLIP_ACC`). The returned hazard is the excess over the
    hand at rest (the first bin: losses there have other causes, such as the left hand's approach), made
    non-decreasing in the acceleration (isotonic, weighted by the steps; scipy), 0 in bins with fewer than
    `min_steps` steps unless a lower bin's is higher."""
    from scipy.optimize import isotonic_regression

    lost, acc = [], []
    for ep in episodes:
        w, a = ep["world"], ep["action"]
        n = len(a)
        if n < SLIP_WINDOW + 2:
            continue
        at = hands(world.chains, w[:n])  # one chain pass for the rules and the accelerations
        rel = world.cube_in_hands(w[:n], at)
        held = world.holding(w[:n], a, rel)[:, 1]
        touch = world.touching(w[:n], rel)
        closing = a[:, GRIPS[1]] < 0.5
        p = at[0][:, 1]  # t + SLIP_WINDOW < n: every p[t + 1] read is inside
        for t in np.flatnonzero(held & ~touch):
            if t < 1 or t + SLIP_WINDOW >= n:
                continue
            after = slice(t + 1, t + 1 + SLIP_WINDOW)
            lost.append(not held[after].any() and closing[after].all() and not touch[after].any())
            acc.append(np.linalg.norm(p[t + 1] - 2 * p[t] + p[t - 1]))
    lost, acc = np.asarray(lost, float), np.asarray(acc)
    if len(acc) < 100:
        raise UserError(f"estimate_slip: {len(acc)} steps where the right hand holds the cube; the fit needs 100 "
                         "(collect more state-only expert-mix episodes: --collect-states N)")
    bins = np.clip(np.searchsorted(SLIP_ACC, acc, "right") - 1, 0, None)
    steps = np.bincount(bins, minlength=len(SLIP_ACC))
    losses = np.bincount(bins, weights=lost, minlength=len(SLIP_ACC))
    rate = np.where(steps >= min_steps, losses / np.maximum(steps, 1), 0.0)
    excess = np.clip(rate - rate[0], 0.0, 1.0)
    hazard = isotonic_regression(excess, weights=np.maximum(steps, 1)).x
    return {"acc": SLIP_ACC, "hazard": [round(float(h), 4) for h in hazard], "steps": steps.tolist(),
            "losses": losses.astype(int).tolist(), "window": SLIP_WINDOW}


def fit_touch(world: AlohaTransferCubeWorld, episodes: list[dict], region: dict) -> dict:
    """The left touch's `centred` (m off the fingers' middle) and `slide` (m) that time the recorded hand-overs
    best: over a grid, the pair whose rule (the cube between the fingers, within `centred` of their middle,
    their slide at most `slide`, the cube in the air) first fires within 4 steps of every successful episode's
    end (its touch) and never in a failed one, in the most episodes; ties go to the tighter pair."""
    tracks = []
    for ep in episodes:
        w = ep["world"]
        rel = world.cube_in_hands(w).reshape(-1, 2, 3)[:, 0]
        inside = (rel[:, 0] >= region["depth"][0]) & (rel[:, 0] <= region["depth"][1]) & \
            (np.abs(rel[:, 2]) <= region["height"]) & (w[:, CUBE][:, 2] > CUBE_HALF + 0.005)
        tracks.append((inside, np.abs(rel[:, 1]), finger_slide(w[:, GRIPS[0]]), ep["success"], len(w) - 1))
    best = None
    for centred in np.arange(0.002, 0.0155, 0.001):
        for slide in np.arange(0.040, 0.0585, 0.001):
            agree = 0
            for inside, y, s, success, end in tracks:
                fire = np.flatnonzero(inside & (y <= centred) & (s <= slide))
                agree += (len(fire) > 0 and abs(fire[0] - end) <= 4) if success else len(fire) == 0
            if best is None or agree > best[0]:
                best = (agree, centred, slide)
    return {"centred": round(float(best[1]), 4), "slide": round(float(best[2]), 4), "agree": int(best[0]),
            "episodes": len(tracks)}


def catch_box(world: AlohaTransferCubeWorld, episodes: list[dict], offset, settle: int = 60) -> list:
    """Where the cube may sit from `offset` (the right hand's frame, per axis [low, high]) when the right
    gripper's command turns to close and still be carried: the box of the closes that carried the cube up
    (within `settle` steps it rose 10 cm: a grip on an edge lifts the cube and loses it on the way), each face
    moved halfway to the nearest close beyond it that missed (inside the box on the other two axes), or 5 mm
    out where none did; among the closes within 6 cm of it."""
    rel, carried = [], []
    for ep in episodes:
        w, a = ep["world"], ep["action"]
        closing = a[:, GRIPS[1]] < 0.5
        for t in np.flatnonzero(np.diff(closing.astype(int)) == 1) + 1:
            rel.append(world.cube_in_hands(w[t : t + 1]).reshape(2, 3)[1] - np.asarray(offset))
            carried.append(bool(w[t : t + settle + 1, CUBE][:, 2].max() > CUBE_HALF + 0.10))
    rel, carried = np.asarray(rel).reshape(-1, 3), np.asarray(carried, bool)
    near = np.linalg.norm(rel, axis=-1) < 0.06  # the hand at the cube (a regrasp from afar doesn't count)
    rel, carried = rel[near], carried[near]
    if carried.sum() < 3:
        raise UserError(f"catch_box: {carried.sum()} right-hand closes carried the cube; collect expert episodes")
    lo, hi = rel[carried].min(0), rel[carried].max(0)
    box = []
    for k in range(3):
        others = [i for i in range(3) if i != k]
        level = ~carried & np.all((rel[:, others] >= lo[others]) & (rel[:, others] <= hi[others]), 1)
        below, above = rel[level & (rel[:, k] < lo[k]), k], rel[level & (rel[:, k] > hi[k]), k]
        box.append([round(float((lo[k] + below.max()) / 2 if len(below) else lo[k] - 0.005), 4),
                    round(float((hi[k] + above.min()) / 2 if len(above) else hi[k] + 0.005), 4)])
    return box


def fit_arms(world: AlohaTransferCubeWorld, episodes: list[dict], steps: int, seed: int, progress: bool, log) -> dict:
    now, prev, act, nxt, rel = [], [], [], [], []
    for ep in episodes:
        w = ep["world"]
        q = w[:, :14]
        now.append(q[:-1])
        prev.append(np.concatenate([q[:1], q[:-2]]))
        act.append(ep["action"][: len(q) - 1])
        nxt.append(q[1:])
        rel.append(world.cube_in_hands(w[:-1]))
    return fit_servo(world.servo, now, prev, act, nxt, rel, steps, seed, stage="servo", log=log, progress=progress)


def tower_data(world: AlohaTransferCubeWorld, episodes: list[dict]) -> dict:
    """Both hands' grasp points and the cube per step; the tower's action: where the right hand goes, where the
    left goes, and both grippers' readings now and next."""
    eps = []
    for ep in episodes:
        w = ep["world"]
        pts = grasp_points(world.chains, w)
        g = w[:, list(GRIPS)]
        action = np.concatenate([pts[1:, 1], pts[1:, 0], g[:-1], g[1:]], -1)
        eps.append({"states": {"left": pts[:, 0], "right": pts[:, 1], "cube": w[:, CUBE]}, "action": action,
                    "rest_action": np.r_[pts[0, 1], pts[0, 0], g[0], g[0]]})
    return entity_transitions(eps, ["left", "right", "cube"])


def fit_renderer(world: AlohaTransferCubeWorld, episodes: list[dict], steps: int, seed: int, progress: bool, log,
                 every: int = 2) -> dict:
    worlds = np.concatenate([ep["world"][::every] for ep in episodes])
    frames = torch.from_numpy(np.concatenate([ep["frames"][::every] for ep in episodes]))
    points = torch.from_numpy(world.project(worlds))[:, 0]
    return fit_keypoint_renderer(world.renderer, points, torch.zeros(len(points), dtype=torch.long), frames,
                                 steps=steps, seed=seed, progress=progress, log=log)


def train(data, out, seed: int = 0, servo_steps: int = 3000, tower_epochs: int = 60, render_steps: int = 3000,
          states=None, progress: bool = True, overwrite: bool = False):
    """Fit a transfer-cube checkpoint into `out`: the joint servo, the tower and the renderer on the episodes with
    frames in `data`; the grasp, slip and table numbers (`measure`) on the state-only episodes in `states`
    (default: the same episodes)."""
    from ...backends.structured import StructuredBackend

    out = Path(out)
    refuse_overwrite(out, overwrite)
    spec = load_spec("aloha")
    episodes = load(Path(data))
    torch.manual_seed(seed)
    world = AlohaTransferCubeWorld(task_config(), spec)
    world.config["grasp"] = world.grasp = measure(world, load(Path(states), frames=False) if states else episodes)
    out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(out / "losses.jsonl")
    provenance = {"data": str(data), "episodes": len(episodes), "states": str(states) if states else None,
                  "seed": seed, "grasp": world.grasp, "servo": fit_arms(world, episodes, servo_steps, seed, progress, log)}
    provenance["tower"] = fit_entity_tower(world.dynamics, tower_data(world, episodes), epochs=tower_epochs,
                                           seed=seed, progress=progress, log=log)
    world.config["tower"] = world.dynamics.cfg.to_dict()
    provenance["renderer"] = fit_renderer(world, episodes, render_steps, seed, progress, log)
    backend = StructuredBackend(world, spec, history=2, success_threshold=0.5, entry_point=ENTRY_POINT,
                                provenance=provenance, action_variant="joint_position")
    backend.save(out)
    return backend


def measure(world: AlohaTransferCubeWorld, episodes: list[dict]) -> dict:
    """The scene's measured numbers: `estimate_grasp`, then `estimate_slip` under that grasp."""
    world.grasp = estimate_grasp(world, episodes)
    world.grasp["right"]["slip"] = estimate_slip(world, episodes)
    return world.grasp


def remeasure(checkpoint, states, out, overwrite: bool = False):
    """A copy of `checkpoint` in `out` with its measured numbers (`measure`) taken again from the state-only
    episodes in `states`; its networks are kept."""
    from ...backends.structured import StructuredBackend

    out = Path(out)
    refuse_overwrite(out, overwrite)
    backend = StructuredBackend.load(checkpoint, runtime="torch")
    world = backend.task
    world.config["grasp"] = measure(world, load(Path(states), frames=False))
    backend.provenance.update(grasp=world.grasp, states=str(states))
    backend.save(out)
    return backend


STATE_EPISODES, STATE_SEED = 400, 5000  # the dynamics' state-only expert-mix episodes (seeds 5000-5399)


def train_sim(dataset, out, seed: int = 0, collect: int = 0, overwrite: bool = False):
    """`cosmos3-robot train-sim --task aloha_transfer_cube`: with `collect`, collect that many expert-mix episodes
    with frames (seeds 1000 on) and 2 random ones into `dataset`, and `STATE_EPISODES` state-only expert-mix
    episodes into `dataset/states` (finished ones kept); then fit (the measured numbers on `dataset/states` where
    it exists)."""
    dataset = Path(dataset)
    if collect:
        _collect(dataset, collect, 1000, "expert-mix")
        _collect(dataset, 2, 3000, "random")
        _collect(dataset / "states", STATE_EPISODES, STATE_SEED, "expert-mix", frames=False)
    states = dataset / "states" if (dataset / "states").is_dir() else None
    return train(dataset, out, seed, states=states, overwrite=overwrite)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of collected episodes with frames (.npz)")
    p.add_argument("--states", default=None,
                   help="folder of state-only episodes for the grasp, slip and table numbers (default: --data)")
    p.add_argument("--out", default=None, help="checkpoint folder to write (omit to only collect)")
    p.add_argument("--collect", type=int, default=0, help="collect this many expert-mix episodes with frames first")
    p.add_argument("--collect-seed", type=int, default=1000)
    p.add_argument("--collect-policy", default="expert-mix")
    p.add_argument("--collect-states", type=int, default=0,
                   help=f"collect this many state-only expert-mix episodes into --states first (seeds {STATE_SEED} on)")
    p.add_argument("--remeasure", default=None, metavar="CHECKPOINT",
                   help="copy this checkpoint to --out with its numbers measured again on --states (no fitting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--servo-steps", type=int, default=3000)
    p.add_argument("--tower-epochs", type=int, default=60)
    p.add_argument("--render-steps", type=int, default=3000)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.collect_states and not a.states:
        raise UserError("--collect-states needs --states DIR (where the state-only episodes go)")
    if a.collect:
        _collect(Path(a.data), a.collect, a.collect_seed, a.collect_policy)
    if a.collect_states:
        _collect(Path(a.states), a.collect_states, STATE_SEED, "expert-mix", frames=False)
    if a.out and a.remeasure:
        if not a.states:
            raise UserError("--remeasure needs --states DIR (state-only episodes)")
        remeasure(a.remeasure, a.states, a.out, overwrite=a.overwrite)
        print(f"wrote {a.out}")
    elif a.out:
        train(a.data, a.out, a.seed, a.servo_steps, a.tower_epochs, a.render_steps, states=a.states,
              overwrite=a.overwrite)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
