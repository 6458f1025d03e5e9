"""Run one policy closed loop in the real and in the learned simulator from the same seed, and
measure how far they agree step by step."""

from __future__ import annotations

import numpy as np

from ..embodiments import is_camera_key

from .rollout import rollout


def frame_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def record(env, policy, seed: int, max_steps: int | None = None) -> dict:
    """One closed-loop episode, keeping every observation (the first and each one after an action),
    action, reward and success flag, and the step's "disagreement" where the env reports one. `frames`: the
    first camera's (`camera`); `cameras`: every camera's, by observation key."""
    keys = [k for k in env.observation_space.spaces if is_camera_key(k)]
    key = keys[0]
    frames, states, actions, rewards, disagreement = [], [], [], [], []
    cameras = {k: [] for k in keys}

    def on_step(obs, action, reward, done, info):
        frames.append(obs[key])
        for k in keys:
            cameras[k].append(obs[k])
        states.append(obs["observation.state"])
        actions.append(np.asarray(action, np.float32))
        rewards.append(reward)
        if "disagreement" in info:
            disagreement.append(float(info["disagreement"]))

    res = rollout(env, policy, seed=seed, max_steps=max_steps, on_step=on_step)
    out = {"frames": np.stack(frames), "states": np.stack(states), "actions": np.stack(actions),
           "rewards": np.asarray(rewards), "success": res["success"], "length": res["length"], "camera": key,
           "cameras": {k: np.stack(v) for k, v in cameras.items()}}
    if disagreement:  # the learned simulator's uncertainty about each step (sampled backends)
        out["disagreement"] = np.asarray(disagreement)
    return out


def paired_rollout(real_env, learned_env, policy, seed: int, max_steps: int | None = None) -> dict:
    """Both runs start from the same first frame (the learned env resets from the real simulator's
    seed); per-step agreement is the frame PSNR and the state distance over the common length."""
    real = record(real_env, policy, seed, max_steps)
    learned = record(learned_env, policy, seed, max_steps)
    n = min(real["length"], learned["length"])
    psnr = np.array([frame_psnr(real["frames"][t], learned["frames"][t]) for t in range(n)])
    state_err = np.linalg.norm(real["states"][:n] - learned["states"][:n], axis=1)
    return {"real": real, "learned": learned, "psnr": psnr, "state_error": state_err, "steps": n}
