"""The closed-loop rollout loop and data collection (policy in the loop, real or learned env)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from ..errors import UserError


def rollout(env, policy, seed: int | None = None, options: dict | None = None, max_steps: int | None = None,
            on_step=None, on_observe=None) -> dict:
    """Run one episode; `on_step(obs, action, reward, done, info)` sees every transition with the observation
    the action was chosen from (`done`: the episode ends with this step: terminated, truncated or
    `max_steps`); `on_observe()` runs right after each observation is made (reset and every step), while the
    env is still in the state it shows. Returns length, return, success and final info."""
    obs, info = env.reset(seed=seed, options=options)
    if on_observe is not None:
        on_observe()
    policy.reset(seed)
    total, steps, success, reward = 0.0, 0, False, 0.0
    while True:
        action = policy.select_action(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        success = success or bool(info.get("is_success", False))
        done = bool(terminated or truncated or (max_steps is not None and steps >= max_steps))
        if on_step is not None:
            on_step(obs, action, reward, done, info)
        if on_observe is not None and not done:
            on_observe()
        obs = next_obs
        if done:
            break
    return {"length": steps, "return": total, "success": success, "final_reward": float(reward), "info": info}


def collect(env, policy, episodes: int, writer, seed0: int = 0, task: str | None = None, progress: bool = True,
            env_name: str = "", meta: dict | None = None) -> list[dict]:
    """Collect `episodes` episodes (seeds seed0, seed0+1, ...) into `writer` (LeRobotRecorder or
    DroidWriter); each finished episode is durable before the next starts. Seeds already present in
    the writer's dataset for this policy, env and source are skipped, so rerunning after a crash resumes. `meta` goes into
    every episode's record (e.g. imagined=True and the checkpoint); where the env reports a per-step
    "disagreement", the episode's mean and max are recorded too."""
    task = task or env.embodiment.task
    # an episode counts as done only if it was recorded the same way: same policy, env, and real or imagined by
    # the same checkpoint (asking for learned episodes where real ones exist records them, it does not skip)
    kind = lambda m: (m.get("policy"), m.get("env", ""), bool(m.get("imagined", False)), m.get("checkpoint"))  # noqa: E731
    want = kind({"policy": policy.name, "env": env_name, **(meta or {})})
    done_seeds = {m.get("seed") for m in writer.existing_episodes() if kind(m) == want}
    results = []
    bar = tqdm(range(seed0, seed0 + episodes), desc=f"collect {policy.name}", disable=not progress)
    for seed in bar:
        if seed in done_seeds:
            continue

        spread = []

        def on_step(obs, action, reward, done, info):
            writer.add_frame(obs, action, reward, bool(info.get("is_success", False)), task, done=done)
            if "disagreement" in info:
                spread.append(float(info["disagreement"]))

        res = rollout(env, policy, seed=seed, on_step=on_step, on_observe=getattr(writer, "observe", None))
        record = {"seed": seed, "policy": policy.name, "success": res["success"], "length": res["length"],
                  "return": res["return"], "final_reward": res["final_reward"], "env": env_name, **(meta or {})}
        if spread:
            record |= {"disagreement_mean": float(np.mean(spread)), "disagreement_max": float(np.max(spread))}
        writer.save_episode(**record)
        results.append(record)
        bar.set_postfix(success=f"{np.mean([r['success'] for r in results]):.2f}")
    return results


def make_writer(fmt: str, out: str | Path, spec, **kwargs):
    from ..datasets import DroidWriter, LeRobotRecorder

    if fmt == "lerobot":
        return LeRobotRecorder(out, spec, **kwargs)
    if fmt == "droid":
        return DroidWriter(out, spec, **kwargs)
    raise UserError(f"unknown dataset format {fmt!r}; choose lerobot or droid")
