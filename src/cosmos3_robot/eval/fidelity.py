"""Open-loop fidelity: start the learned simulator from a recorded frame, feed the recorded actions,
and compare the predicted frame h steps later with the recorded one (PSNR, SSIM from scikit-image)
against two references: copy-last-frame (a model that predicts no motion) and the real simulator
replaying the same actions from a snapshot of its state (deterministic: the exact ceiling)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from ..embodiments import is_camera_key
from .paired import frame_psnr


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def record_with_states(real_env, policy, seed: int, steps: int) -> dict:
    """Frames of every camera, actions, rewards (the reward after each action) and full simulator states of
    one real episode (no early termination); `key`: the first camera, the one scored."""
    keys = [k for k in real_env.observation_space.spaces if is_camera_key(k)]
    obs, info = real_env.reset(seed=seed)
    policy.reset(seed)
    frames, states, actions, rewards, sim = [obs], [obs["observation.state"]], [], [], [info["state"]]
    for _ in range(steps):
        a = policy.select_action(obs)
        obs, reward, _, _, info = real_env.step(a)
        rewards.append(float(reward))
        frames.append(obs)
        states.append(obs["observation.state"])
        actions.append(np.asarray(a, np.float32))
        sim.append(info["state"])
    return {"frames": np.stack([f[keys[0]] for f in frames]), "states": np.stack(states),
            "actions": np.stack(actions), "rewards": np.array(rewards), "sim": np.stack(sim), "key": keys[0],
            "cameras": {k: np.stack([f[k] for f in frames]) for k in keys}}


def open_loop(learned_env, real_env, episodes: list[dict], horizons=(1, 4, 16, 32), starts_per_episode: int = 4,
              seed: int = 0) -> dict:
    """Mean PSNR / SSIM per horizon for the learned env, copy-last-frame and the real simulator."""
    rng = np.random.default_rng(seed)
    H = max(horizons)
    scores = {name: {h: {"psnr": [], "ssim": []} for h in horizons} for name in ("learned", "copy_last", "real")}
    for ep in episodes:
        T = len(ep["actions"])
        for t0 in rng.choice(np.arange(0, T - H), size=min(starts_per_episode, T - H), replace=False):
            context = learned_env.backend.history
            lo = max(0, t0 - context + 1)
            cameras = ep.get("cameras", {ep["key"]: ep["frames"]})
            learned_env.reset(seed=int(rng.integers(2**31)), options={
                "frames": {k: f[lo : t0 + 1] for k, f in cameras.items()}, "state": ep["states"][lo : t0 + 1]})
            real_env.reset(options={"state": ep["sim"][t0]})
            for h in range(1, H + 1):
                pred = learned_env.step(ep["actions"][t0 + h - 1])[0][ep["key"]]
                replay = real_env.step(ep["actions"][t0 + h - 1])[0][ep["key"]]
                if h in horizons:
                    truth = ep["frames"][t0 + h]
                    for name, img in (("learned", pred), ("copy_last", ep["frames"][t0]), ("real", replay)):
                        scores[name][h]["psnr"].append(min(frame_psnr(img, truth), 99.0))
                        scores[name][h]["ssim"].append(ssim(img, truth))
    return {name: {h: {m: float(np.mean(v)) for m, v in d.items()} for h, d in per.items()}
            for name, per in scores.items()}


def fidelity_table(result: dict) -> str:
    horizons = sorted(next(iter(result.values())))
    head = "| model | " + " | ".join(f"PSNR h={h}" for h in horizons) + " | " + \
        " | ".join(f"SSIM h={h}" for h in horizons) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(horizons))]
    for name, per in result.items():
        lines.append(f"| {name} | " + " | ".join(f"{per[h]['psnr']:.1f}" for h in horizons) + " | "
                     + " | ".join(f"{per[h]['ssim']:.3f}" for h in horizons) + " |")
    return "\n".join(lines)
