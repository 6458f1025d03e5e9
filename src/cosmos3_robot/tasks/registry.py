"""The task registry: each task package registers one `TaskInfo`, keyed by the task's name, and the CLI, the
Gymnasium ids, evaluation and the LeRobot plugin read it (docs/adding_a_task.md). A task names the embodiment
spec it uses, so two tasks may share a robot."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..errors import UserError


@dataclass(frozen=True)
class TaskInfo:
    """One task. `real_id` / `real_entry_point`: its real simulator's Gymnasium id and class ("module:Class");
    `learned_id` and `checkpoint`: the learned simulator's id and shipped checkpoint, where one ships;
    `episode_limit`: both ids' step limit; `policy_factory`: "module:function" making its scripted policies by
    name (`make(policy, seed=...)`); `policy_head`: the shipped checkpoint with a policy head (`world-model`);
    `demo_policies` / `demo_real_kwargs`: the demo's evaluation table and the real scene's options for it;
    `success_kwarg`: the real env's argument that sets its success threshold, where it has one; `trainer`:
    "module:function" running the task's learned-simulator recipe (`train-sim`), called as
    `function(dataset, out, seed=..., collect=..., overwrite=...)`; `aliases`: earlier names that still work,
    with a deprecation line; `demo_steps`: the demo's episode length (default `episode_limit`); `commands`:
    "module:function" adding the task's own CLI subcommands (`function(subparsers)`); `default_for`: the CLI
    commands whose --task/--env defaults to this task (the first registered task is every other's default)."""

    name: str
    embodiment: str
    real_id: str
    real_entry_point: str
    learned_id: str | None = None
    checkpoint: str | None = None
    episode_limit: int | None = None
    policy_factory: str = ""
    policy_head: str | None = None
    demo_policies: tuple[str, ...] = ()
    demo_real_kwargs: dict = field(default_factory=dict)
    success_kwarg: str | None = None
    trainer: str | None = None
    aliases: tuple[str, ...] = ()
    demo_steps: int | None = None
    commands: str | None = None
    default_for: tuple[str, ...] = ()


REGISTRY: dict[str, TaskInfo] = {}


def register_task(info: TaskInfo) -> TaskInfo:
    if info.name in REGISTRY or any(info.name in t.aliases or set(info.aliases) & ({t.name} | set(t.aliases))
                                    for t in REGISTRY.values()):
        raise UserError(f"task {info.name!r} (aliases {list(info.aliases)}) is registered already")
    REGISTRY[info.name] = info
    return info


def task_names(aliases: bool = False) -> list[str]:
    """Registered task names, in registration order (and their earlier names, with `aliases`)."""
    out = list(REGISTRY)
    return out + [a for t in REGISTRY.values() for a in t.aliases] if aliases else out


def task_info(name: str, warn: bool = False) -> TaskInfo:
    """A task by name, by an earlier name (with `warn`, a deprecation line on stderr), or by the embodiment
    name when exactly one task uses that embodiment."""
    if name in REGISTRY:
        return REGISTRY[name]
    for info in REGISTRY.values():
        if name in info.aliases:
            if warn:
                print(f"cosmos3-robot: task name {name!r} is deprecated; use {info.name!r}", file=sys.stderr)
            return info
    users = [t for t in REGISTRY.values() if t.embodiment == name]
    if len(users) == 1:
        return users[0]
    raise UserError(f"unknown task {name!r}; choose one of {task_names()}")


def default_task(command: str | None = None) -> str:
    """The task a CLI command runs when none is named: the one registered as `command`'s default, else the first
    registered."""
    if not REGISTRY:
        raise UserError("no task is registered")
    return next((t.name for t in REGISTRY.values() if command in t.default_for), next(iter(REGISTRY)))
