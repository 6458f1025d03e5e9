"""The learned Franka cube simulator's recipe (scripts/train_franka_cube.sh): from a LeRobot dataset that
`cosmos3-robot collect --env droid --video-quality lossless` wrote, perceive every frame's world state
(robot state + cube and target from the exterior cameras), then fit the joint servo, the Generator tower
(hand and cube) and the keypoint renderer, and write a structured checkpoint.

    python -m cosmos3_robot.tasks.franka_cube.train --dataset DIR --out DIR [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d
from tqdm.auto import tqdm

from ...embodiments import load_spec
from ...model.checkpoint import refuse_overwrite
from ...model.entity_tower import EntityTower
from ...train.entity import entity_transitions, fit_entity_tower
from ...model.keypoint_renderer import KeypointRenderer, KeypointRendererConfig
from ...train.renderers import fit_keypoint_renderer
from ...train import JsonlLogger, fit_servo
from .kinematics import camera_mount, chain_parameters
from .perception import CAMERA, GREEN, RED, find_on_table, locate_cube
from .real import CUBE_HALF, exterior_calibrations
from .structured import (CUBE, EE, ENTRY_POINT, GRIP, HOLD_MAX, TARGET, TOUCH, WORLD_DIMS, YAW, FrankaCubeWorld,
                         grasp_frame, joints, keypoint_groups, tower_config)
from ...errors import UserError


STILL, PUSHED = 0.004, 0.015  # m
HIDDEN = 0.8  # a blob under this share of its first size is partly hidden
SMOOTH = 5  # steps


def task_config(arm_width: int = 256, tower: dict | None = None, render: dict | None = None) -> dict:
    chain = chain_parameters()
    return {"chain": chain, "mount": camera_mount(), "arm_width": arm_width,
            "calibrations": {n: c.to_dict() for n, c in exterior_calibrations().items()},
            "tower": tower_config(**(tower or {})).to_dict(),
            "renderer": KeypointRendererConfig(groups=keypoint_groups(len(chain["bodies"])), cameras=3,
                                               **(render or {})).to_dict()}


def perceive_episode(world: FrankaCubeWorld, frames: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
    """Every frame's world state; where neither exterior camera sees the cube (the hand over it), the last
    place it was seen; a cube resting on the table stays where it was while the hand hides part of it (HIDDEN)
    or when seen less than PUSHED away; a lifted one follows moves over STILL."""
    T = len(state)
    out = np.zeros((T, WORLD_DIMS), np.float32)
    out[:, :14] = state[:, :14]
    cube, yaw, target, full = None, 0.0, None, None
    for t in range(T):
        images = {c: frames[c][t] for c in frames}
        areas = {}
        seen = locate_cube(images, world.calibs, CUBE_HALF, areas)
        full = full or areas  # the first frame's blobs: the cube unhidden, the hand high above it
        if seen is not None and cube is not None:
            # on the table the cube stays while the hand hides part of it (its blob's centroid moves, not the
            # cube) and unless it is pushed clearly (PUSHED): smaller moves are the blob's jitter
            resting = cube[2] < CUBE_HALF + 0.01 and seen[2] < CUBE_HALF + 0.01
            hidden = any(areas[c] < HIDDEN * full[c] for c in full)
            if resting and hidden or np.linalg.norm(seen - cube) < (PUSHED if resting else STILL):
                seen = None
        cube = seen if seen is not None else cube
        if t == 0:
            top = find_on_table(images[CAMERA], world.calibs[CAMERA], RED, CUBE_HALF)
            yaw = top[1] if top is not None else 0.0
            found = find_on_table(images[CAMERA], world.calibs[CAMERA], GREEN, 0.0)
            target = found[0] if found is not None else np.array([0.5, 0.0])
        out[t, CUBE] = cube if cube is not None else [0.5, 0.0, CUBE_HALF]
        out[t, YAW], out[t, TARGET] = yaw, target
    # a moving cube's blob is partly hidden by the fingers, differently each frame: average its track over
    # SMOOTH steps (a resting cube's track is constant, so it stays exactly where it was)
    out[:, CUBE] = uniform_filter1d(out[:, CUBE], SMOOTH, axis=0, mode="nearest")
    return out


def load_world_episodes(dataset, world: FrankaCubeWorld, size: tuple[int, int], progress: bool = True) -> list[dict]:
    """Episodes of a dataset, or of several joined by commas -> {"world" (T, W), "action" (T, 8), "frames"
    (T, cameras, h, w, 3) at the renderer's size}."""
    from ...datasets import load_episodes
    from ...datasets.lerobot_io import open_dataset
    from ...datasets.video import resize_to

    spec = world.spec
    roots = [r for r in str(dataset).split(",") if r]
    todo = [(root, i) for root in roots for i in range(open_dataset(root).meta.total_episodes)]
    out = []
    for root, i in tqdm(todo, desc="perceive episodes", disable=not progress):
        ep = load_episodes(root, episodes=[i])[0]
        frames = {c.name: ep["frames"][c.key] for c in spec.cameras}
        w = perceive_episode(world, frames, np.asarray(ep["state"], np.float64))
        small = np.stack([resize_to(frames[c], *size) for c in world.cameras], 1)
        out.append({"world": w, "action": np.asarray(ep["action"], np.float64), "frames": small})
    return out


def estimate_grasp(episodes: list[dict], chain: dict, settle: int = 8) -> dict:
    """The grasp constraint's numbers from the recorded episodes. At every step where the gripper command turns
    to closed: where the cube sits from the hand, in the hand's frame (`chain`'s kinematics: x across the
    fingers, y along their travel, z down them), when the fingers' reading reaches TOUCH, and whether the
    fingers stopped on it (`settle` steps later their reading is in the cube's band, TOUCH..HOLD_MAX, not
    closed on air). `offset`: the median of the grasps that stopped on it; `across`, `along` and `depth`: how
    far from that offset a grasp still catches the cube, each halfway between the farthest grasp that caught
    it and the nearest miss beyond that, among the closes within 10 cm of it (`across` among the grasps square
    to the cube's faces, where the pads meet a face; a turned cube reaches `turned_reach` further, by geometry;
    `missed_inside` counts the misses nearer than that: closes on air where the perceived cube sat, which a
    stale perceived place gives); `hold`: the median reading the fingers settled at on the cube; `fall`: g dt^2 at 15 Hz (m per step per
    step: a free cube above the table falls ballistically until the table stops it)."""
    rel, caught, readings, reach = [], [], [], []
    for ep in episodes:
        w, closing = ep["world"], np.asarray(ep["action"])[:, 7] >= 0.5
        for t in np.flatnonzero(np.diff(closing.astype(int)) == 1) + 1:
            later = w[min(t + settle, len(w) - 1), GRIP]
            # the step the fingers start to close
            touch = min(t + int(np.argmax(np.r_[w[t:, GRIP], 1.0] >= TOUCH)), len(w) - 1)
            at, turned = grasp_frame(chain, w[touch : touch + 1])
            rel.append(at[0])
            reach.append(turned[0])
            caught.append(bool(TOUCH <= later <= HOLD_MAX and closing[t : t + settle + 1].all()))
            readings.append(later)
    rel, caught, reach = np.asarray(rel, np.float64).reshape(-1, 3), np.asarray(caught, bool), np.asarray(reach)
    if caught.sum() < 3 or (~caught).sum() < 1:
        raise UserError(f"estimate_grasp: {caught.sum()} grasps caught the cube and {(~caught).sum()} missed; the "
                         "data needs both (collect expert and expert-mix episodes, scripts/train_franka_cube.sh)")
    offset = np.median(rel[caught], 0)
    d = np.abs(rel - offset)
    d[:, 0] = np.maximum(d[:, 0] - reach, 0.0)  # across: from the (turned) cube's edge
    attempt = np.linalg.norm(d, axis=-1) < 0.1  # the hand at the cube (random closes elsewhere don't count)

    def boundary(dist, among):
        """Halfway between the farthest grasp that caught the cube and the nearest miss beyond it."""
        far = dist[among & caught].max()
        beyond = dist[among & ~caught & (dist > far)]
        return float(far + beyond.min()) / 2 if len(beyond) else float(far) * 1.1

    level = attempt & (d[:, 2] < 0.03)
    square = reach < 0.002  # the faces within ~5 degrees of square to the pads
    across = boundary(d[:, 0], level & (d[:, 1] < 0.01) & square)
    along = boundary(d[:, 1], level & (d[:, 0] < across))
    depth = boundary(d[:, 2], attempt & (d[:, 0] < across) & (d[:, 1] < along))
    inside = attempt & (d[:, 0] < across) & (d[:, 1] < along) & (d[:, 2] < depth)
    hold = float(np.median(np.asarray(readings)[caught]))
    r4 = lambda x: round(float(x), 4)  # noqa: E731
    return {"offset": [r4(x) for x in offset], "across": r4(across), "along": r4(along), "depth": r4(depth),
            "hold": r4(hold), "fall": r4(9.81 / 15**2), "events": int(len(caught)), "caught": int(caught.sum()),
            "missed_inside": int((inside & ~caught).sum()), "turned": True}


def fit_arm(world: FrankaCubeWorld, episodes: list[dict], steps: int, seed: int, progress: bool, log,
            rest_every: int = 5) -> dict:
    now, prev, act, nxt, rel = [], [], [], [], []
    for ep in episodes:
        j = joints(ep["world"])
        r = ep["world"][:, CUBE] - ep["world"][:, EE]  # the cube from the hand
        now.append(j[:-1])
        prev.append(np.concatenate([j[:1], j[:-2]]))
        act.append(ep["action"][:-1])
        nxt.append(j[1:])
        # held still: an arm at rest whose targets are where it stands stays there (the recorded policies never
        # hold still, and without these the servo drifts when a target is reached); the gripper where it rested
        still = np.abs(j[1:, 7] - j[:-1, 7]) < 1e-3
        rest = j[:-1][still][::rest_every]
        cmd = ep["action"][:-1, 7][still][::rest_every]
        now.append(rest)
        prev.append(rest)
        act.append(np.concatenate([rest[:, :7], cmd[:, None]], -1))
        nxt.append(rest)
        rel += [r[:-1], r[:-1][still][::rest_every]]
    return fit_servo(world.arm, now, prev, act, nxt, rel, steps, seed, stage="arm", log=log, progress=progress)


def tower_data(episodes: list[dict]) -> dict:
    """The hand and the cube per step; the tower's action: where the hand goes and the gripper now and next."""
    eps = []
    for ep in episodes:
        w = ep["world"]
        action = np.concatenate([w[1:, EE], w[:-1, GRIP, None], w[1:, GRIP, None]], -1)
        eps.append({"states": {"hand": w[:, EE], "cube": w[:, CUBE]}, "action": action,
                    "rest_action": np.r_[w[0, EE], w[0, GRIP], w[0, GRIP]]})
    return entity_transitions(eps, ["hand", "cube"])


def train(dataset, out, seed: int = 0, arm_steps: int = 3000, tower_epochs: int = 100, render_steps: int = 3000,
          tower: dict | None = None, render: dict | None = None, progress: bool = True, overwrite: bool = False,
          init=None, grasp: bool = True, refine_steps: int = 1500):
    """See the module docstring. `init`: an earlier checkpoint whose renderer is kept (the servo and the tower are
    fitted); `tower` overrides EntityTowerConfig fields; `grasp=False` leaves the grasp constraint out (the tower
    alone moves the cube)."""
    from ...backends.structured import StructuredBackend

    out = Path(out)
    refuse_overwrite(out, overwrite)
    spec = load_spec("droid")
    torch.manual_seed(seed)
    tower = {"dim": 64, "ffn_dim": 128, "head_width": 128, **(tower or {})}
    world = FrankaCubeWorld(task_config(tower=tower, render=render), spec)
    keep = {}
    if init is not None:  # keep the renderer of an earlier checkpoint; fit the servo and the tower anew
        from ...backends import checkpoint_path
        from ...model.checkpoint import read_raw_config, read_weights

        raw = read_raw_config(checkpoint_path(init))  # only the renderer is read: the rest may be older code's
        weights, _ = read_weights(checkpoint_path(init))
        world.config["renderer"] = raw["task_config"]["renderer"]
        world.renderer = KeypointRenderer(KeypointRendererConfig.from_dict(world.config["renderer"]))
        world.renderer.load_state_dict({k.removeprefix("renderer."): v for k, v in weights.items()
                                        if k.startswith("renderer.")})
        keep = {k: raw["provenance"][k] for k in ("renderer", "renderer_refine") if k in raw["provenance"]}
        render_steps = 0
    out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(out / "losses.jsonl")
    size = (world.renderer.cfg.height, world.renderer.cfg.width)
    episodes = load_world_episodes(dataset, world, size, progress)
    if grasp:
        world.config["grasp"] = world.grasp = estimate_grasp(episodes, world.config["chain"])
    provenance = {"dataset": str(dataset), "episodes": len(episodes), "seed": seed, **keep}
    if arm_steps:
        provenance["arm"] = fit_arm(world, episodes, arm_steps, seed, progress, log)
    if init is not None:
        provenance["init"] = str(init)
    provenance["tower"] = fit_entity_tower(world.dynamics, tower_data(episodes), epochs=tower_epochs, seed=seed,
                                           progress=progress, log=log)
    world.config["tower"] = world.dynamics.cfg.to_dict()  # with the change scale the fit set from the data
    if render_steps:
        data = renderer_data(world, episodes)
        provenance["renderer"] = fit_renderer(world, data, render_steps, seed, progress, log)
        if refine_steps:
            provenance["renderer_refine"] = refine_renderer(world, data, refine_steps, seed, progress, log)
    backend = StructuredBackend(world, spec, history=2, success_threshold=0.5, entry_point=ENTRY_POINT,
                                provenance=provenance, action_variant="joint_position")
    backend.save(out)
    return backend


def renderer_data(world: FrankaCubeWorld, episodes: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Episodes -> the keypoint renderer's training set: keypoints (N, P, 3), camera indices (N,) and frames
    (N, h, w, 3), every camera of every step."""
    points = torch.from_numpy(world.project(np.concatenate([ep["world"] for ep in episodes])))  # (T, C, P, 3)
    frames = torch.from_numpy(np.concatenate([ep["frames"] for ep in episodes]))  # (T, C, h, w, 3)
    C = points.shape[1]
    return (points.reshape(-1, *points.shape[2:]), torch.arange(C).repeat(len(points)),
            frames.reshape(-1, *frames.shape[2:]))


def fit_renderer(world: FrankaCubeWorld, data: tuple, steps: int, seed: int, progress: bool, log, lr: float = 2e-3,
                 emphasis=None) -> dict:
    """Fit the keypoint renderer on `renderer_data`."""
    return fit_keypoint_renderer(world.renderer, *data, steps=steps, lr=lr, seed=seed, progress=progress, log=log,
                                 emphasis=emphasis)


def object_emphasis(weight: float = 30.0):
    """The renderer's extra loss weight on the cube and the target (their colours, grown by 2 pixels so that
    colour painted around them counts too): a few pixels each at the renderer's size, where a policy that
    locates them by colour reads the frame. Without it the drawn cube was read 4.3 cm off on seeds 0-29
    (docs/eval_franka.md)."""
    import cv2

    kernel = np.ones((5, 5), np.uint8)

    def emphasis(frames: np.ndarray) -> np.ndarray:
        out = np.zeros(frames.shape[:3], np.float32)
        for i, frame in enumerate(frames):
            hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV)
            mask = np.zeros(frame.shape[:2], np.uint8)
            for lo, hi in RED + GREEN:
                mask |= cv2.inRange(hsv, np.array(lo), np.array(hi))
            out[i] = weight * (cv2.dilate(mask, kernel) > 0)
        return out

    return emphasis


def refine_renderer(world: FrankaCubeWorld, data: tuple, steps: int, seed: int, progress: bool, log,
                    weight: float = 60.0, lr: float = 5e-4) -> dict:
    """Continue the keypoint renderer's fit on `renderer_data` with `object_emphasis` (the recipe's last renderer
    step)."""
    info = fit_renderer(world, data, steps, seed, progress, log, lr=lr, emphasis=object_emphasis(weight))
    return {**info, "weight": weight}


def _reopen(checkpoint, dataset, out, progress: bool, overwrite: bool):
    """A checkpoint to change in one step -> (its backend, the dataset's world episodes, the output folder)."""
    from ...backends import checkpoint_path
    from ...backends.structured import StructuredBackend

    out = Path(out)
    if out.resolve() != checkpoint_path(checkpoint).resolve():
        refuse_overwrite(out, overwrite)
    backend = StructuredBackend.load(checkpoint_path(checkpoint), runtime="torch")
    world = backend.task
    episodes = load_world_episodes(dataset, world, (world.renderer.cfg.height, world.renderer.cfg.width), progress)
    out.mkdir(parents=True, exist_ok=True)
    return backend, episodes, out


def refine(checkpoint, dataset, out, steps: int = 1500, seed: int = 0, weight: float = 60.0, progress: bool = True,
           overwrite: bool = False):
    """A checkpoint -> the same with its renderer refined on `dataset` by `refine_renderer` (servo, tower and
    grasp numbers kept)."""
    backend, episodes, out = _reopen(checkpoint, dataset, out, progress, overwrite)
    info = refine_renderer(backend.task, renderer_data(backend.task, episodes), steps, seed, progress,
                           JsonlLogger(out / "losses.jsonl"), weight)
    backend.provenance["renderer_refine"] = {**info, "dataset": str(dataset), "episodes": len(episodes),
                                             "from": str(checkpoint)}
    backend.save(out)
    return backend


def remeasure(checkpoint, dataset, out, progress: bool = True, overwrite: bool = False):
    """A checkpoint -> the same with its grasp numbers measured again from `dataset` (`estimate_grasp`)."""
    backend, episodes, out = _reopen(checkpoint, dataset, out, progress, overwrite)
    world = backend.task
    world.config["grasp"] = world.grasp = estimate_grasp(episodes, world.config["chain"])
    backend.provenance["grasp"] = {"dataset": str(dataset), "episodes": len(episodes), "from": str(checkpoint)}
    backend.save(out)
    return backend


def train_sim(dataset, out, seed: int = 0, collect: int = 0, overwrite: bool = False):
    """`cosmos3-robot train-sim --task franka_cube`: with `collect`, the shipped recipe's data first
    (scripts/train_franka_cube.sh: `collect` expert-mix episodes from seed 1000, a quarter as many of the expert
    from seed 2000, 4 random ones from seed 3000 and half as many expert-varied (rests, turned grasps) from seed
    4000, lossless, 200 steps; finished ones are kept); then the fit and the tower's ONNX graph."""
    from ...cli import run_step as cli

    if collect:
        base = ["collect", "--env", "franka_cube", "--format", "lerobot", "--video-quality", "lossless", "--out",
                str(dataset), "--max-steps", "200"]
        for policy, n, first in (("expert", max(1, collect // 4), 2000), ("expert-mix", collect, 1000),
                                 ("random", 4, 3000), ("expert-varied", max(1, collect // 2), 4000)):
            cli([*base, "--policy", policy, "--episodes", str(n), "--seed", str(first)])
    backend = train(dataset, out, seed, overwrite=overwrite)
    cli(["export-onnx", str(out)])
    return backend


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arm-steps", type=int, default=3000)
    p.add_argument("--tower-epochs", type=int, default=100)
    p.add_argument("--render-steps", type=int, default=3000)
    p.add_argument("--tower", default=None, help='EntityTowerConfig overrides as JSON, e.g. {"dim": 96, "samples": 8}')
    p.add_argument("--init", default=None, help="keep this checkpoint's renderer; fit the servo and the tower")
    p.add_argument("--no-grasp", action="store_true", help="no grasp constraint: the tower alone moves the cube")
    p.add_argument("--refine-steps", type=int, default=1500,
                   help="steps of the renderer's fit with the cube and target weighted (object_emphasis)")
    p.add_argument("--refine-renderer", default=None, metavar="CKPT",
                   help="only refine this checkpoint's renderer on --dataset (--refine-steps) and write --out")
    p.add_argument("--remeasure", default=None, metavar="CKPT",
                   help="only measure this checkpoint's grasp numbers again on --dataset and write --out")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    import json

    if a.remeasure:
        remeasure(a.remeasure, a.dataset, a.out, overwrite=a.overwrite)
    elif a.refine_renderer:
        refine(a.refine_renderer, a.dataset, a.out, a.refine_steps, a.seed, overwrite=a.overwrite)
    else:
        train(a.dataset, a.out, a.seed, a.arm_steps, a.tower_epochs, a.render_steps, overwrite=a.overwrite,
              tower=json.loads(a.tower) if a.tower else None, init=a.init, grasp=not a.no_grasp,
              refine_steps=a.refine_steps)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
