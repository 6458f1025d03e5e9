"""Scripted pick-and-place expert for the Franka cube scene, acting from the observation alone.

It finds the red cube and the green target in the `exterior_1_left` image by colour, casts each
pixel's ray through the camera's calibration (`CameraCalibration`, OpenCV) onto the table plane to
get base-frame positions, and reads its own end-effector pose from `observation.state` (DROID's
cartesian_position). Waypoints (above cube, grasp, lift, above target, place, release) become joint
targets through the policy's own kinematic model (`FrankaIK`), with a speed limit per control step.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ...embodiments import CameraCalibration
from .perception import CAMERA, GREEN, RED, find_on_table
from .real import CUBE_HALF, FrankaIK, exterior_calibrations
from ...errors import UserError

GRASP_OFFSET = 0.02  # m: the end-effector site sits this far above the fingers' grip centre
HOVER, CARRY = 0.14, 0.16  # m above the table
MAX_STEP = 0.03  # m of end-effector travel per 15 Hz control step (0.45 m/s)
REACHED = 0.012  # m


class FrankaPickPlaceExpert:
    """Pick the cube, place it on the target (see module docstring). Actions: DROID joint_position
    (7 joint targets + gripper, 0 = open).

    Degradations (the policy ladder; each a different kind of mistake): `noise` (m, Gaussian noise on each
    end-effector step), `offset` (m: the grasp aims this far from the perceived cube, in a direction drawn per
    episode), `close_early` (the gripper closes when the descent to the grasp is this many steps from its
    end), `speed` (fraction of the expert's end-effector speed), `release_height` (m above the place height
    at which the cube is let go), `wait` (steps the arm first holds still, gripper open, before the expert
    looks and plans), `turn` (rad: the hand's yaw turned this far from the cube's faces at the grasp), `carry`
    (m: the cube carried this much higher), `miss` (m: placed this far from the target, in a direction drawn per
    episode)."""

    def __init__(self, calibration: CameraCalibration, name: str = "expert", noise: float = 0.0, seed: int = 0,
                 offset: float = 0.0, close_early: float = 0.0, speed: float = 1.0, release_height: float = 0.0,
                 wait: float = 0.0, turn: float = 0.0, carry: float = 0.0, miss: float = 0.0):
        if not 0.0 < speed <= 4.0:
            raise UserError(f"speed={speed}: give a fraction of the expert's speed in (0, 4]")
        self.calibration, self.name, self.noise = calibration, name, noise
        self.offset, self.close_early, self.speed, self.release_height = offset, close_early, speed, release_height
        self.wait, self.turn, self.carry, self.miss = int(wait), turn, carry, miss
        self.ik = FrankaIK()
        self._seed = seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)
        self.plan: list[tuple[np.ndarray, float, int]] | None = None
        self.stage, self.hold, self.waited = 0, 0, 0

    def _make_plan(self, image: np.ndarray) -> None:
        cube = find_on_table(image, self.calibration, RED, CUBE_HALF)  # top face seen: its centre height
        target = find_on_table(image, self.calibration, GREEN, 0.0)
        if cube is None or target is None:
            raise RuntimeError(f"the expert cannot see the {'cube' if cube is None else 'target'} in {CAMERA}")
        (c, yaw), (t, _) = cube, target
        if self.offset:
            angle = self.rng.uniform(0, 2 * np.pi)
            c = c + self.offset * np.array([np.cos(angle), np.sin(angle)])
        if self.miss:
            angle = self.rng.uniform(0, 2 * np.pi)
            t = t + self.miss * np.array([np.cos(angle), np.sin(angle)])
        grasp = CUBE_HALF + GRASP_OFFSET
        place = grasp + 0.005 + self.release_height
        # (end-effector position, gripper, steps to hold after reaching)
        self.plan = [
            (np.r_[c, HOVER], 0.0, 0), (np.r_[c, grasp], 0.0, 2), (np.r_[c, grasp], 1.0, 8),
            (np.r_[c, CARRY + self.carry], 1.0, 0), (np.r_[t, CARRY + self.carry], 1.0, 0), (np.r_[t, place], 1.0, 2),
            (np.r_[t, place], 0.0, 6), (np.r_[t, HOVER], 0.0, 1000),
        ]
        # gripper pointing down, fingers across the cube's faces (the hand's yaw is 45 degrees off link 7)
        self.rot = Rotation.from_euler("xyz", [np.pi, 0.0, -(yaw + np.pi / 4 + self.turn)]).as_matrix()

    def select_action(self, observation: dict) -> np.ndarray:
        state = np.asarray(observation["observation.state"], np.float64)
        q, ee = state[:7], state[8:11]
        if self.waited < self.wait:  # hold still: joint targets = the joints now, gripper open
            self.waited += 1
            return np.r_[q, 0.0].astype(np.float32)
        if self.plan is None:
            self._make_plan(np.asarray(observation[f"observation.images.{CAMERA}"]))
        max_step = MAX_STEP * self.speed
        goal, grip, hold = self.plan[self.stage]
        delta = goal - ee
        dist = np.linalg.norm(delta)
        if self.stage == 1 and self.close_early and dist < self.close_early * max_step:
            self.stage, self.hold = 2, 0  # the gripper closes before the hand is down
            goal, grip, hold = self.plan[self.stage]
        if dist < REACHED and self.stage < len(self.plan) - 1:
            self.hold += 1
            if self.hold > hold:
                self.stage, self.hold = self.stage + 1, 0
        step = ee + delta * min(1.0, max_step / max(dist, 1e-9))
        if self.noise:
            step = step + self.rng.normal(0.0, self.noise, 3)
        target_q = self.ik.solve(q, step, self.rot)
        return np.r_[target_q, grip].astype(np.float32)


class FrankaMixedExpert(FrankaPickPlaceExpert):
    """Data collection: the expert with degradations drawn anew each episode from its seed (noise 0-3 cm,
    offset 0-5 cm, closing 0-5 steps early, speed 0.5-1.5, release 0-8 cm up), each present half the time, so
    the data hold clean and degraded grasps, carries and releases alike."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        on = self.rng.random(5) < 0.5
        self.noise = on[0] * self.rng.uniform(0.0, 0.03)
        self.offset = on[1] * self.rng.uniform(0.0, 0.05)
        self.close_early = on[2] * self.rng.uniform(0.0, 5.0)
        self.speed = self.rng.uniform(0.5, 1.5) if on[3] else 1.0
        self.release_height = on[4] * self.rng.uniform(0.0, 0.08)


class FrankaVariedExpert(FrankaMixedExpert):
    """Data collection beyond the mix: its degradations, and each half the time a rest of 1-40 steps before
    the expert looks (the arm held still) and a grasp with the hand turned -45 to 45 degrees from the cube's
    faces, so the data hold rests and turned grasps (docs/eval_franka.md)."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        on = self.rng.random(2) < 0.5
        self.wait = int(on[0] * self.rng.integers(1, 41))
        self.turn = on[1] * self.rng.uniform(-np.pi / 4, np.pi / 4)


class FrankaRandomPolicy:
    """Uniform joint targets within a small box around the current joints, random gripper."""

    def __init__(self, name: str = "random", scale: float = 0.15, seed: int = 0):
        self.name, self.scale, self._seed = name, scale, seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self._seed if seed is None else seed)

    def select_action(self, observation: dict) -> np.ndarray:
        q = np.asarray(observation["observation.state"][:7], np.float64)
        return np.r_[q + self.rng.uniform(-self.scale, self.scale, 7), self.rng.integers(0, 2)].astype(np.float32)


# real success on held-out seeds 5000-5009 (not the evaluation seeds): 1.0, 0.9, 0.7, 0.5, 0.4, 0.1, 0.0, 0.0
LADDER = ["expert", "expert-noise1", "expert-slow40", "expert-noise1.5", "expert-offset3", "expert-noise2",
          "expert-early3", "random"]
DEGRADATIONS = {"noise": ("noise", 0.01), "offset": ("offset", 0.01), "early": ("close_early", 1.0),
                "slow": ("speed", 0.01), "drop": ("release_height", 0.01), "wait": ("wait", 1.0),
                "turn": ("turn", np.pi / 180), "high": ("carry", 0.01), "miss": ("miss", 0.01)}


def make_franka_policy(name: str, seed: int = 0):
    """The ladder (`LADDER`): expert; expert-noise<s> (Gaussian noise of s cm on each end-effector step);
    expert-offset<d> (grasp aimed d cm off the cube); expert-early<k> (gripper closes k steps before the hand
    is down); expert-slow<p> (p % of the expert's speed); expert-drop<h> (cube let go h cm above the place
    height); expert-wait<k> (the arm holds still k steps, then the expert looks and plans); expert-turn<deg>
    (the hand's yaw turned deg degrees from the cube's faces at the grasp); expert-high<cm> (carried cm higher);
    expert-miss<cm> (placed cm from the target, success within 3 cm); random. expert-mix: degradations drawn per
    episode (data collection); expert-varied: those, rests and turned grasps (data collection)."""
    import re

    if name == "random":
        return FrankaRandomPolicy(seed=seed)
    calib = exterior_calibrations()[CAMERA]
    if name == "expert":
        return FrankaPickPlaceExpert(calib, seed=seed)
    if name == "expert-mix":
        return FrankaMixedExpert(calib, name=name, seed=seed)
    if name == "expert-varied":
        return FrankaVariedExpert(calib, name=name, seed=seed)
    if m := re.fullmatch(r"expert-(noise|offset|early|slow|drop|wait|turn|high|miss)([0-9.]+)", name):
        field, unit = DEGRADATIONS[m.group(1)]
        return FrankaPickPlaceExpert(calib, name=name, seed=seed, **{field: float(m.group(2)) * unit})
    raise UserError(f"unknown Franka policy {name!r}; use expert, expert-noise<cm>, expert-offset<cm>, "
                     "expert-early<steps>, expert-slow<percent>, expert-drop<cm>, expert-wait<steps>, "
                     "expert-turn<degrees>, expert-high<cm>, expert-miss<cm>, expert-mix, expert-varied or random")
