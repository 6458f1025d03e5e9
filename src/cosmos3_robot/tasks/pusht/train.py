"""`cosmos3-robot train-dynamics`: the shipped learned PushT simulator's recipe (scripts/train_pusht_dynamics.sh).

From a world-model checkpoint trained with the T's perceived pose and a conv frame head that draws the
state's geometry, train the body-frame pose dynamics head on the dataset's transitions (poses perceived
from its frames), optionally retrain that conv head to draw frames from the state alone (`render_steps`,
latent space) and fine-tune it with the tokenizer's decoder in pixel space (`pixel_steps`), then write a
structured-backend checkpoint holding only what the learned env runs. From a structured checkpoint, only
the pose head is retrained (the renderer is kept)."""

from __future__ import annotations

import hashlib

from pathlib import Path

import numpy as np
import torch

from ...backends.registry import backend_name, checkpoint_path
from ...embodiments import Normalizer, load_spec, pad_action
from ...model import StateRenderer
from ...model.checkpoint import refuse_overwrite
from ...model.entity_tower import EntityTower
from ...train.entity import entity_transitions, fit_entity_tower
from ...train import JsonlLogger
from .dynamics import PoseDynamics, fit_pose_dynamics, reinit, transitions
from .real import random_pusht_frames, set_state
from .structured import ENTITIES, build_backend, tower_config, world_model_parts
from .vision import block_pose_features, features_to_pose
from ...errors import UserError


def perceived_episodes(episodes: list[dict], spec, features: list[np.ndarray]) -> list[dict]:
    """LeRobot episodes (`datasets.load_episodes`) -> the pusher from `observation.state`, the T's pose from
    each frame's perceived features, the recorded actions."""
    dims = spec.state.dims
    if spec.action_dims != dims:
        raise UserError(f"PushT dynamics need actions that are pusher targets (action dims {spec.action_dims} = "
                         f"state dims {dims}); {spec.name!r} differs")
    return [{"agent": np.asarray(ep["state"])[:, :dims], "pose": features_to_pose(f), "action": np.asarray(ep["action"])}
            for ep, f in zip(episodes, features)]


def every_kth_state(episodes: list[dict], k: int) -> tuple[np.ndarray, np.ndarray]:
    """`perceived_episodes` -> the pusher (N, 2) and the T's pose (N, 3) at every k-th recorded state, where the
    exact transitions of `tower_transitions` start."""
    return (np.concatenate([ep["agent"][::k] for ep in episodes]), np.concatenate([ep["pose"][::k] for ep in episodes]))


def settle_episodes(episodes: list[dict], every: int, steps: int = 6, seed: int = 0) -> list[dict]:
    """Short episodes of a pusher settling on a nearby target, run in gym-pusht's own physics: for every
    `every`-th recorded state, the pusher at rest is sent to a target 0.25-25 units away (log-uniform, a
    random direction) and held there for `steps` steps. Only states where the pusher's path stays clear of
    the T are used, and a run where the real T moved anyway is dropped, so the T rests throughout.

    The recorded policies keep moving their targets, so the tower had never seen a pusher close in on a
    target a few units away, and it learned to stop 1-5 units short (a held-still pusher, target = position,
    moves nothing). gym-pusht's PD controller closes the gap: about a quarter of it in the first step from
    rest, all of it within about 8 steps. Episodes as `tower_transitions` reads them."""
    from gym_pusht.envs.pusht import PushTEnv
    from shapely.geometry import LineString

    from .vision import t_polygon

    env = PushTEnv(obs_type="state")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for a, p in zip(*every_kth_state(episodes, every)):
        direction = rng.uniform(0, 2 * np.pi)
        offset = np.exp(rng.uniform(np.log(0.25), np.log(25.0))) * np.array([np.cos(direction), np.sin(direction)])
        target = np.clip(a + offset, 20.0, 492.0)
        if t_polygon(p).distance(LineString([a, target + 1e-6])) < 15 + 5:  # pusher radius + a margin
            continue
        set_state(env, np.concatenate([a, p]))  # at rest
        block = np.array([*env.block.position, env.block.angle])
        path = [a]
        for _ in range(steps):
            env.step(target)
            path.append(np.array(env.agent.position))
        if np.abs(np.array([*env.block.position, env.block.angle]) - block).max() > 1e-6:
            continue
        out.append({"states": {"pusher": np.stack(path), "tee": np.repeat(p[None], steps + 1, 0)},
                    "action": np.repeat(target[None], steps, 0), "rest_action": a})
    return out


def transitions_sha1(data: dict) -> str:
    """A hash of the tower's training transitions (every tensor, in order): two rebuilds that part before the
    fit differ here already."""
    h = hashlib.sha1()
    for key in sorted(data):
        for t in data[key] if isinstance(data[key], list) else [data[key]]:
            h.update(key.encode())
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def machine() -> dict:
    """What a fit's last bits depend on besides its inputs: the CPU model, torch's version and thread count
    (docs/eval_pusht_tower.md, "What a rebuild reproduces")."""
    import platform

    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "torch": torch.__version__, "threads": torch.get_num_threads()}


def tower_transitions(episodes: list[dict], rest_every: int = 0, settle_every: int = 0) -> dict:
    """`perceived_episodes` -> the Generator tower's entity transitions (pusher, T); at rest before the start.

    `rest_every` k > 0 adds, for every k-th recorded state, the transition gym-pusht's physics gives exactly:
    a pusher at rest whose target is where it stands exerts no force, so nothing moves. The recorded
    policies never hold still (least of all touching the T), and without these a held pusher in contact
    can set the learned T moving (docs/eval_pusht_tower.md). `settle_every` k > 0 adds `settle_episodes`."""
    eps = [{"states": {"pusher": ep["agent"], "tee": ep["pose"]}, "action": ep["action"], "rest_action": ep["agent"][0]}
           for ep in episodes]
    if rest_every > 0:
        eps += [{"states": {"pusher": np.stack([a, a]), "tee": np.stack([p, p])}, "action": a[None], "rest_action": a}
                for a, p in zip(*every_kth_state(episodes, rest_every))]
    if settle_every > 0:
        eps += settle_episodes(episodes, settle_every)
    return entity_transitions(eps, [e["name"] for e in ENTITIES])


def train_dynamics(init, dataset, out, width: int = 256, epochs: int = 30, seed: int = 0, render_steps: int = 0,
                   render_width: int | None = None, render_layers: int | None = None, render_batch: int = 256,
                   pixel_steps: int = 0, random_frames: int = 0, device: str = "cpu", progress: bool = True,
                   overwrite: bool = False, dynamics: str = "tower", tower: dict | None = None, lr: float = 2e-3,
                   rest_every: int = 10, settle_every: int = 20):
    """See the module docstring. `dynamics`: "tower" (the Generator tower over entity tokens; `width` is its
    token width, `tower` overrides other EntityTowerConfig fields, `rest_every` adds held-still transitions and
    `settle_every` a pusher settling on a near target,
    see `tower_transitions`) or "mlp" (the baseline pose MLP, `width` wide). Returns the structured backend
    written to `out`."""
    if dynamics not in ("tower", "mlp"):
        raise UserError(f"dynamics={dynamics!r}; expected 'tower' (the Generator tower) or 'mlp' (the baseline)")
    from dataclasses import replace

    from ...datasets import load_episodes
    from ...model import WorldModel
    from ...train.renderers import fit_renderer, fit_renderer_pixels, render_pairs

    refuse_overwrite(out, overwrite)
    if pixel_steps and not render_steps:
        raise UserError("pixel_steps fine-tune the state renderer: give render_steps > 0 too (--render-steps)")
    out = Path(out)
    structured = backend_name(init) == "structured"
    if structured and render_steps:
        raise UserError(f"{init} is a structured checkpoint: its renderer is final; --render-steps needs the "
                         "world-model checkpoint it came from (see scripts/train_pusht_dynamics.sh)")
    if structured:
        from ...backends.structured import StructuredBackend

        base = StructuredBackend.load(checkpoint_path(init))
        renderer, spec, meta = base.task.renderer, base.spec, None
        policy = base.task.policy  # a policy head is kept as it is
        state_norm, history = base.task.config["state_normalizer"], base.history
        provenance = dict(base.provenance)
    else:
        model, _ = world_model_parts(checkpoint_path(init))
        meta = dict(model.metadata)
        if not meta.get("perceived_state") or not model.cfg.conv_head_state:
            raise UserError(f"{init}: pose dynamics need a checkpoint trained with --perceive-state and "
                             "--conv-head-state (frames drawn from the state); see scripts/train_pusht_state.sh")
        spec = load_spec(meta["embodiment"])
        state_norm, history = meta["normalizers"]["observation.state"], int(meta.get("context", 2))
        provenance = {k: meta[k] for k in ("train",) if k in meta}
        policy = None
    episodes = load_episodes(dataset)
    camera_key = spec.cameras[0].key
    features = [block_pose_features(ep["frames"][camera_key]) for ep in episodes]  # once, for every fit
    out.mkdir(parents=True, exist_ok=True)
    log = JsonlLogger(out / "losses.jsonl")

    if render_steps:  # a fresh conv head that reads only the state, fit on the dataset's frames
        torch.manual_seed(seed)
        cfg = replace(model.cfg, conv_head_width=render_width or model.cfg.conv_head_width,
                      conv_head_layers=render_layers or model.cfg.conv_head_layers)
        fresh = WorldModel(cfg, meta)
        fresh.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("frame_conv.")},
                              strict=False)
        model = fresh
        normalizers = {k: Normalizer.from_dict(d) for k, d in meta["normalizers"].items()}
        pairs = render_pairs(model, episodes, normalizers, meta["perceived_state"], camera_key, features)
        info = fit_renderer(model, pairs, steps=render_steps, batch=render_batch, seed=seed, device=device,
                            progress=progress, log=log)
        provenance["renderer_training"] = {"device": device, **info}
        if pixel_steps:
            from ...model.frame_tokenizer import resize_frames

            frames, states = [ep["frames"][camera_key] for ep in episodes], [pairs["state"]]
            if random_frames:
                extra, agents = random_pusht_frames(random_frames, seed)
                s = np.concatenate([normalizers["observation.state"].normalize(agents.astype(np.float64)),
                                    block_pose_features(extra)], axis=1).astype(np.float32)
                frames.append(extra)
                states.append(torch.from_numpy(pad_action(s, model.cfg.state_dim)[0]))
            frames = resize_frames(np.concatenate(frames), model.cfg.image_size)
            info = fit_renderer_pixels(model, frames, torch.cat(states), steps=pixel_steps, seed=seed, device=device,
                                       progress=progress, log=log)
            provenance["renderer_training"]["pixels"] = {**info, "random_frames": random_frames}
    if not structured:
        renderer = StateRenderer.from_world_model(model)
    perceived = perceived_episodes(episodes, spec, features)
    if dynamics == "tower":
        torch.manual_seed(seed)
        head = EntityTower(tower_config(spec, dim=width, **(tower or {})))
        data = tower_transitions(perceived, rest_every, settle_every)
        metrics = fit_entity_tower(head, data, epochs=epochs, lr=lr, seed=seed,
                                   progress=progress, log=log)
        provenance.pop("pose_dynamics", None)
        provenance["tower"] = {"dataset": str(dataset), "epochs": epochs, "seed": seed, "lr": lr,
                               "rest_every": rest_every, "settle_every": settle_every, **metrics,
                               "transitions_sha1": transitions_sha1(data), "machine": machine()}
    else:
        head = PoseDynamics(width)
        reinit(head, seed)
        metrics = fit_pose_dynamics(head, transitions(perceived), epochs=epochs, seed=seed, progress=progress, log=log)
        provenance["pose_dynamics"] = {"dataset": str(dataset), "epochs": epochs, "seed": seed, "width": width,
                                       **metrics}
    # goal coverage >= the real simulator's threshold (PushTRealEnv: 0.90) is success, as in the real env
    backend = build_backend(renderer, head, state_norm, spec, history, 0.9, provenance, policy)
    backend.save(out)
    return backend


def relabel(episodes: list[dict], teacher: str, key: str) -> None:
    """Replace each episode's actions, in place, with what the scripted `teacher` does at each of its
    recorded observations, fed in order as in a rollout (offline DAgger: the states a noisy or lagging
    policy visited, with the expert's answer to each)."""
    from . import make_pusht_policy

    for ep in episodes:
        policy = make_pusht_policy(teacher)
        policy.reset(0)
        frames, states = ep["frames"][key], np.asarray(ep["state"])
        ep["action"] = np.stack([policy.select_action({"observation.state": states[t], key: frames[t]})
                                 for t in range(len(states))]).astype(np.float32)


def train_policy(init, dataset, out, policies: list[str] | None = None, chunk: int = 16, epochs: int = 100,
                 seed: int = 0, width: int = 96, flow_steps: int = 4, n_action_steps: int = 1, candidates: int = 1,
                 relabel_with: str | None = None,
                 progress: bool = True, overwrite: bool = False):
    """The policy head (`model.entity_policy`: the Generator tower in policy mode) of the structured PushT
    checkpoint `init`, trained on the episodes of `dataset` (a directory, or several joined by commas) recorded
    by the named `policies` (every episode if None), each state perceived as the learned env perceives it (the
    T's pose from the frame). Without `relabel_with` only successful episodes are kept, with their recorded
    actions; with it, every episode is kept and its actions are the scripted `relabel_with` policy's answers
    to its observations (`relabel`). `flow_steps`, `n_action_steps` and `candidates` are the agent's defaults at
    run time. Writes `init` with the new head to `out`; dynamics and renderer kept."""
    from ...backends.structured import StructuredBackend
    from ...datasets import load_episodes, read_episode_meta
    from ...model.entity_policy import EntityPolicy, EntityPolicyConfig
    from ...train.entity import fit_entity_policy, policy_samples

    refuse_overwrite(out, overwrite)
    if backend_name(init) != "structured":
        raise UserError(f"{init}: the policy head goes on a structured PushT checkpoint (e.g. pusht_tower)")
    base = StructuredBackend.load(checkpoint_path(init))
    key, episodes = base.spec.cameras[0].key, []
    for root in str(dataset).split(","):
        meta = read_episode_meta(root)
        keep = [m["episode_index"] for m in meta if (policies is None or m.get("policy") in policies)
                and (m.get("success") or relabel_with)]
        if not keep:
            names = sorted({str(m.get("policy")) for m in meta})
            raise UserError(f"{root}: no {'' if relabel_with else 'successful '}episode of policies {policies}; "
                             f"it holds {names}")
        loaded = load_episodes(root, episodes=keep)
        if key not in loaded[0]["frames"]:
            raise UserError(f"{root}: its frames are under {sorted(loaded[0]['frames'])}, not {key!r} (the spec's "
                             "camera key); re-collect it with `cosmos3-robot collect`")
        episodes += loaded
    if relabel_with:
        relabel(episodes, relabel_with, key)
    perceived = perceived_episodes(episodes, base.spec, [block_pose_features(ep["frames"][key]) for ep in episodes])
    data = policy_samples([{"states": {"pusher": ep["agent"], "tee": ep["pose"]}, "action": ep["action"],
                            "rest_action": ep["agent"][0]} for ep in perceived], [e["name"] for e in ENTITIES], chunk)
    torch.manual_seed(seed)
    cfg = EntityPolicyConfig(tower_config(base.spec, dim=width, ffn_dim=2 * width).to_dict(), chunk=chunk,
                             flow_steps=flow_steps, n_action_steps=n_action_steps, candidates=candidates)
    policy = EntityPolicy(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = fit_entity_policy(policy, data, epochs=epochs, seed=seed, progress=progress,
                                log=JsonlLogger(out / "policy_losses.jsonl"))
    provenance = {**base.provenance, "policy": {"dataset": str(dataset), "policies": policies,
                                                "relabel_with": relabel_with, "episodes": len(episodes),
                                                "chunk": chunk, "epochs": epochs, "seed": seed, **metrics}}
    backend = build_backend(base.task.renderer, base.task.dynamics, base.task.config["state_normalizer"], base.spec,
                            base.history, base.success_threshold, provenance, policy)
    backend.save(out)
    return backend

