"""Task packages: the only place a task's objects are named. Each registers a `TaskInfo` (tasks/registry.py):
its Gymnasium ids (real simulator and, where a checkpoint ships, the learned one), its policy ladder and its
checkpoints. docs/adding_a_task.md says how to add one."""

from __future__ import annotations

import gymnasium as gym

from .registry import REGISTRY, TaskInfo, register_task, task_info, task_names
# each registers its task and pieces, in this order: the first is the default of the LeRobot plugin's --env.task
from . import pusht  # noqa: F401,E402,I001
from . import franka_cube  # noqa: F401,E402,I001
from . import aloha  # noqa: F401,E402,I001
from ..errors import UserError

__all__ = ["REGISTRY", "TaskInfo", "learned_env_id", "make_policy", "make_real_env", "real_env_id", "register_envs",
           "register_task", "task_info", "task_names"]


def register_envs() -> None:
    """Gymnasium ids of every registered task, with its step limit."""
    for info in REGISTRY.values():
        if info.real_id not in gym.registry:
            gym.register(id=info.real_id, entry_point=info.real_entry_point)
        if info.learned_id and info.learned_id not in gym.registry:
            gym.register(id=info.learned_id, entry_point="cosmos3_robot.sim:LearnedEnv",
                         vector_entry_point="cosmos3_robot.sim:LearnedVectorEnv", max_episode_steps=info.episode_limit,
                         kwargs={"backend": info.checkpoint, "start": info.real_id, "embodiment": info.embodiment})


def make_real_env(name: str, **kwargs) -> gym.Env:
    """A task's real simulator, without gymnasium's wrappers; its own `max_episode_steps` (an env argument here,
    not a TimeLimit)."""
    from gymnasium.envs.registration import load_env_creator

    register_envs()
    spec = gym.spec(task_info(name).real_id)
    return load_env_creator(spec.entry_point)(**{**spec.kwargs, **kwargs})


def real_env_id(name: str) -> str:
    return task_info(name).real_id


def learned_env_id(name: str) -> str:
    env_id = task_info(name).learned_id
    if env_id is None:
        raise UserError(f"no learned simulator is shipped for {name!r}; train a checkpoint and make "
                         "cosmos3_robot.sim.LearnedEnv(checkpoint=..., start=...)")
    return env_id


def world_model_policy(name: str, policy: str, seed: int = 0):
    """`world-model[:<checkpoint>][#chunk=N&steps=S&plan=K&horizon=H&draws=M]`: the policy head of a checkpoint
    (default: the task's shipped one, `POLICY_HEADS`), playing N actions of each chunk (default: the head's
    n_action_steps), sampled with S flow steps (default: the head's), the best of K sampled chunks by the reward
    the checkpoint's own dynamics imagines for each over H steps, the worst of M imagined futures (defaults: the
    head's `candidates`, `horizon`, `draws`; structured checkpoints).
    Structured checkpoints -> `StructuredPolicy`, MoT ones -> `WorldModelPolicy`."""
    from ..backends.registry import backend_name

    body, _, fragment = policy.partition("#")
    ckpt = body.removeprefix("world-model").removeprefix(":")
    opts = {}
    for part in filter(None, fragment.split("&")):
        key, _, value = part.partition("=")
        if key not in ("chunk", "steps", "plan", "horizon", "draws") or not value.isdigit() or int(value) < 1:
            raise UserError(f"policy {policy!r}: options are #chunk=N&steps=S&plan=K&horizon=H&draws=M with positive "
                             f"integers, got {part!r}")
        opts[key] = int(value)
    if not ckpt:
        ckpt = task_info(name).policy_head
        if ckpt is None:
            heads = {t.name: t.policy_head for t in REGISTRY.values() if t.policy_head}
            raise UserError(f"policy {policy!r}: no policy head is shipped for {name!r}; name a checkpoint with "
                             f"one: world-model:<checkpoint dir> (shipped: {heads})")
    if backend_name(ckpt) == "structured":
        from ..policies import StructuredPolicy

        return StructuredPolicy(ckpt, n_action_steps=opts.get("chunk"), flow_steps=opts.get("steps"), seed=seed,
                                candidates=opts.get("plan"), horizon=opts.get("horizon"), draws=opts.get("draws"),
                                name=policy)
    from ..policies import WorldModelPolicy

    if opts.keys() & {"plan", "horizon", "draws"}:
        raise UserError(f"policy {policy!r}: #plan=K, #horizon=H and #draws=M need a structured checkpoint (its "
                         f"dynamics imagines each chunk); {ckpt!r} is a {backend_name(ckpt)!r} one")
    chunk = opts.get("chunk", 4)
    return WorldModelPolicy(ckpt, chunk=chunk, sample_steps=opts.get("steps"), seed=seed, name=policy)


def make_policy(name: str, policy: str, seed: int = 0):
    """A policy by name: the task's scripted ladder, `random` (uniform in the action limits),
    `lerobot:<pretrained_model dir>`, `openpi:<host>:<port>` or `openpi:ws://...` (a policy served over openpi's
    protocol or vLLM-Omni's OpenPI endpoint), or
    `world-model:<checkpoint>` (the world model's own policy head, `WorldModelPolicy`)."""
    from ..backends.registry import resolve_entry_point
    from ..embodiments import load_spec
    from ..policies import RandomPolicy

    info = task_info(name)
    factory, name = info.policy_factory, info.embodiment  # specs are the embodiment's
    if policy == "world-model" or policy.startswith(("world-model:", "world-model#")):
        return world_model_policy(name, policy, seed)
    if policy.startswith("openpi:"):
        from ..serve.openpi import OpenPIPolicy

        where = policy.removeprefix("openpi:")
        if where.startswith(("ws://", "wss://")):  # a full URL, e.g. vLLM-Omni's /v1/realtime/robot/openpi
            return OpenPIPolicy(where, spec=name, name=policy)
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"policy {policy!r}: write openpi:<host>:<port> or openpi:ws://<host>:<port>/<path>, "
                            "e.g. openpi:127.0.0.1:8000")
        return OpenPIPolicy(host, int(port), spec=name, name=policy)
    if policy.startswith("lerobot:"):
        from ..policies import LeRobotPolicy  # torch and lerobot load only for it

        return LeRobotPolicy(policy.removeprefix("lerobot:"), task=load_spec(name).task, name=policy, embodiment=name)
    if factory:
        return resolve_entry_point(factory)(policy, seed=seed)
    if policy == "random":
        vec = load_spec(name).action
        return RandomPolicy(low=vec.lower, high=vec.upper, dims=vec.dims, seed=seed)
    raise UserError(f"policy {policy!r} is not available for {name!r}: it has no scripted ladder (use random or "
                     "lerobot:<dir>)")
