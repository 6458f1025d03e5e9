"""Record, or compare against a record, what every shipped checkpoint gives: frames, states and rewards of
closed-loop rollouts (the expert; the policy head's own actions for the policy checkpoint) from fixed seeds.
A refactor that must not change the simulators runs it before (--save) and after (--compare).

    python scripts/check_shipped_outputs.py --save before.npz [--seeds 3 --steps 150]
    python scripts/check_shipped_outputs.py --compare before.npz
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

CHECKPOINTS = {"pusht_tower": "pusht", "pusht_fast": "pusht", "pusht_small": "pusht", "franka_cube": "droid",
               "aloha_transfer_cube": "aloha_transfer_cube"}


def rollouts(checkpoint: str, env_name: str, seeds: int, steps: int) -> dict[str, np.ndarray]:
    from cosmos3_robot.cli import learned_env
    from cosmos3_robot.tasks import make_policy

    env = learned_env(env_name, checkpoint, max_episode_steps=steps)
    out = {}
    for seed in range(seeds):
        policy = make_policy(env_name, "expert", seed)
        obs, _ = env.reset(seed=seed)
        policy.reset(seed)
        frames, states, rewards = [], [], []
        for _ in range(steps):
            obs, reward, terminated, truncated, _ = env.step(policy.select_action(obs))
            frames.append(np.stack([v for k, v in sorted(obs.items()) if k != "observation.state"]))
            states.append(obs["observation.state"])
            rewards.append(reward)
            if terminated or truncated:
                break
        out[f"{checkpoint}/{seed}/frames"] = np.stack(frames)
        out[f"{checkpoint}/{seed}/states"] = np.stack(states)
        out[f"{checkpoint}/{seed}/rewards"] = np.asarray(rewards)
    env.close()
    return out


def policy_actions(seeds: int, steps: int) -> dict[str, np.ndarray]:
    """The policy head (`pusht_policy`, planning) in the learned PushT simulator."""
    from cosmos3_robot.cli import learned_env
    from cosmos3_robot.tasks import make_policy

    env = learned_env("pusht", "pusht_tower", max_episode_steps=steps)
    out = {}
    for seed in range(seeds):
        policy = make_policy("pusht", "world-model", seed)
        obs, _ = env.reset(seed=seed)
        policy.reset(seed)
        actions, rewards = [], []
        for _ in range(steps):
            action = policy.select_action(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            actions.append(np.asarray(action))
            rewards.append(reward)
            if terminated or truncated:
                break
        out[f"pusht_policy/{seed}/actions"] = np.stack(actions)
        out[f"pusht_policy/{seed}/rewards"] = np.asarray(rewards)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--save")
    what.add_argument("--compare")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    result = {}
    for ckpt, env_name in CHECKPOINTS.items():
        result |= rollouts(ckpt, env_name, args.seeds, args.steps)
    result |= policy_actions(args.seeds, args.steps)
    if args.save:
        np.savez_compressed(args.save, **result)
        for k in sorted(result):
            print(k, result[k].shape, hashlib.sha1(result[k].tobytes()).hexdigest()[:12])
        return
    before = dict(np.load(args.compare))
    bad = 0
    print("| output | steps | identical | max abs difference |\n|---|---|---|---|")
    for k in sorted(set(before) | set(result)):
        a, b = before.get(k), result.get(k)
        if a is None or b is None or a.shape != b.shape:
            print(f"| {k} | {None if a is None else a.shape} vs {None if b is None else b.shape} | no | - |")
            bad += 1
            continue
        same = np.array_equal(a, b)
        bad += not same
        diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0
        print(f"| {k} | {len(a)} | {'yes' if same else 'no'} | {diff:.3g} |")
    print(f"{len(result) - bad} of {len(result)} identical")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
