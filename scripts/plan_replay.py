"""Where a planning head's real and learned runs part (issue 40): is the planner exploiting the model, or is
the model wrong for every policy?

Each policy runs closed loop in the real simulator from each seed; its recorded actions are then replayed open
loop, from the same first frame, in the learned simulator that judges it (the task's shipped checkpoint) and in
the dynamics the planner imagines with (the policy head's own checkpoint). A planner that picks the chunks its
model is wrong about in its favour leaves action sequences that the models rate higher than the real
simulator does, by more than the same models rate the unplanned head's or the expert's actions. Printed per
policy: real success, each replay's success, how many real failures each replay calls a success, and the mean
of (replay - real) best goal coverage over the episode.

Usage: scripts/plan_replay.py --policies "expert,world-model#plan=1,world-model" --seed 880000 --episodes 30
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from cosmos3_robot.eval.paired import record
from cosmos3_robot.sim import LearnedEnv
from cosmos3_robot.tasks import make_policy, task_info


class Replay:
    """Plays recorded actions in order (open loop)."""

    def __init__(self, actions: np.ndarray):
        self.actions, self.t = actions, 0

    def reset(self, seed=None):
        self.t = 0

    def select_action(self, observation):  # `replay` stops after the last one (max_steps)
        action = self.actions[self.t]
        self.t += 1
        return action


def outcome(run: dict) -> dict:
    """A recorded episode -> its success and best goal coverage."""
    return {"success": bool(run["success"]), "best": float(np.max(run["rewards"]))}


def replay(env, actions: np.ndarray, seed: int) -> dict:
    return outcome(record(env, Replay(actions), seed, max_steps=len(actions)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="pusht")
    p.add_argument("--policies", default="expert,world-model#plan=1,world-model")
    p.add_argument("--seed", type=int, default=880000)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--out", default=None, help="write the per-episode results here (JSON)")
    args = p.parse_args()
    info = task_info(args.task)
    real = gym.make(info.real_id)  # its TimeLimit: the task's episode limit
    judge = LearnedEnv(checkpoint=info.checkpoint, start=info.real_id)
    planner = LearnedEnv(checkpoint=info.policy_head, start=info.real_id)
    rows, table = {}, []
    for name in args.policies.split(","):
        policy = make_policy(args.task, name, seed=0)
        eps = []
        for seed in tqdm(range(args.seed, args.seed + args.episodes), desc=name):
            run = record(real, policy, seed)  # the rollout resets the policy with the seed
            eps.append({"seed": seed, "real": outcome(run), "judge": replay(judge, run["actions"], seed),
                        "planner": replay(planner, run["actions"], seed)})
        rows[name] = eps
        r = np.array([e["real"]["success"] for e in eps])
        line = [name, f"{r.mean():.2f}"]
        for side in ("judge", "planner"):
            s = np.array([e[side]["success"] for e in eps])
            gap = np.mean([e[side]["best"] - e["real"]["best"] for e in eps])
            line += [f"{s.mean():.2f}", f"{int((s & ~r).sum())}/{int((~r).sum())}", f"{gap:+.3f}"]
        table.append(line)
    print("| policy | real | judge replay | real failures the judge calls success | judge - real best coverage "
          "| planner's dynamics replay | its false successes | planner - real best coverage |")
    print("|---|---|---|---|---|---|---|---|")
    for line in table:
        print("| " + " | ".join(line) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
