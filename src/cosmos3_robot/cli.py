"""`cosmos3-robot` command line: a thin layer over functions the tests call directly."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from .embodiments import list_embodiments, load_spec
from .errors import UserError


def embodiment_rows() -> list[dict[str, str]]:
    """One row per shipped spec: the facts `cosmos3-robot embodiments` prints."""
    rows = []
    for name in list_embodiments():
        s = load_spec(name)
        rows.append({
            "name": s.name,
            "kind": s.kind,
            "domain": str(s.domain_id),
            "action": f"{s.default_action} ({s.action_dims}-D)",
            "variants": ", ".join(f"{k}:{v.dims}" for k, v in s.actions.items() if k != s.default_action) or "-",
            "state": str(s.state.dims),
            "control_hz": f"{s.control_hz:g}",
            "video_fps": f"{s.video_fps:g}",
            "chunk": str(s.chunk_length),
            "cameras": ", ".join(f"{c.name} {c.height}x{c.width}" for c in s.cameras),
        })
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    headers = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line([r[h] for h in headers]) for r in rows]
    return "\n".join(out)


def cmd_embodiments(args: argparse.Namespace) -> int:
    if args.name:
        s = load_spec(args.name)
        print(f"{s.name} ({s.kind}, domain {s.domain_id}): {s.description}")
        for variant, vec in s.actions.items():
            mark = " (default)" if variant == s.default_action else ""
            print(f"  action {variant}{mark}: {vec.dims}-D, chunk {vec.chunk_length}")
            for f in vec.fields:
                rot = f", {f.rotation}" if f.rotation else ""
                print(f"    {f.name:<22} {f.dims:>2} {f.unit:<10} {f.representation}{rot}, norm {f.normalization},"
                      f" [{f.lower.min():g}, {f.upper.max():g}]")
        print(f"  state: {s.state.dims}-D  " + ", ".join(f"{f.name}[{f.dims}]" for f in s.state.fields))
        return 0
    print(format_table(embodiment_rows()))
    return 0


def served(checkpoint) -> bool:
    """Whether --checkpoint names a served model (http://HOST:PORT) rather than a checkpoint."""
    return str(checkpoint or "").startswith(("http://", "https://"))


def learned_env(task: str, checkpoint=None, **kwargs):
    """The task's learned simulator as registered (its shipped checkpoint unless `checkpoint`, started from
    its real one, its step limit unless `max_episode_steps`), without gymnasium's wrappers."""
    import gymnasium as gym

    from .sim import LearnedEnv
    from .tasks import learned_env_id

    spec = gym.spec(learned_env_id(task))
    kw = {**spec.kwargs, "max_episode_steps": spec.max_episode_steps, **kwargs}
    if served(checkpoint):  # a served model: ours (stateful) or a plain vLLM-Omni (stateless), as it describes itself
        kw["backend"], kw["url"] = "remote", str(checkpoint)
    elif checkpoint:
        kw["backend"] = checkpoint
    return LearnedEnv(**kw)


def episode_limit(task: str) -> int:
    """The task's registered episode length (its learned env's TimeLimit)."""
    import gymnasium as gym

    from .tasks import learned_env_id, register_envs

    register_envs()
    return int(gym.spec(learned_env_id(task)).max_episode_steps)


def learned_vec_env(task: str, checkpoint=None, max_steps: int = 300, **backend_kwargs):
    """n -> a native batched learned env of the task (the backend is loaded once, here)."""
    import gymnasium as gym

    from .backends import load_backend
    from .sim import LearnedVectorEnv
    from .tasks import learned_env_id, real_env_id

    registered = gym.spec(learned_env_id(task)).kwargs
    if served(checkpoint):
        backend = load_backend("remote", url=str(checkpoint), spec=registered.get("embodiment"))
    else:
        backend = load_backend(checkpoint or registered["backend"], **backend_kwargs)
    return lambda n: LearnedVectorEnv(n, backend, real_env_id(task), max_episode_steps=max_steps,
                                      autoreset_mode="Disabled")


def prepare_out(out, flag: str = "--out"):
    """Create an output directory and prove it is writable before any long work starts."""
    from pathlib import Path

    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{flag} {str(path)!r} is not a writable directory ({e.strerror}); choose another path") from e
    return path


def prepare_rrd(args) -> None:
    """An .rrd sink's folder must be writable before the rollout runs (spawn / serve write no file)."""
    from pathlib import Path

    if args.rrd and not (getattr(args, "spawn", False) or getattr(args, "serve", False)):
        prepare_out(Path(args.rrd).parent, f"--rrd {args.rrd}: folder")


def task_info(name: str, warn: bool = False):
    """The registered task `name` (tasks.registry), imported when first needed."""
    from .tasks import task_info as info

    return info(name, warn)


def task_infos(learned: bool = False, demo: bool = False) -> list:
    """Registered tasks (`learned`: those with a shipped learned simulator; `demo`: those with a demo table)."""
    from .tasks import REGISTRY

    return [t for t in REGISTRY.values() if (t.learned_id or not learned) and (t.demo_policies or not demo)]


def task_choices(learned: bool = False, demo: bool = False) -> list[str]:
    """Registered task names and their earlier names, for --task / --env."""
    infos = task_infos(learned, demo)
    return [t.name for t in infos] + [a for t in infos for a in t.aliases]


def default_task(command: str) -> str:
    """The task `command` runs when none is named (TaskInfo.default_for; else the first registered)."""
    from .tasks.registry import default_task as default

    return default(command)


def task_max_steps(args: argparse.Namespace) -> None:
    """--max-steps left out: the task's episode limit."""
    if args.max_steps is None:
        args.max_steps = task_info(args.env).episode_limit or 300


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: the expert in the learned and the real simulator from the same seed, per-step
    agreement, an .rrd of both (every camera), and a small learned-vs-real evaluation table."""
    from .eval import paired_rollout
    from .eval.policy_eval import EvalConfig, evaluate, write_report
    from .tasks import make_policy, make_real_env
    from .viz import RolloutLog, save_rollout

    task = args.env
    max_steps = args.max_steps or task_info(task).demo_steps or episode_limit(task)
    out = prepare_out(args.out)
    prepare_rrd(args)
    learned = learned_env(task, args.checkpoint, max_episode_steps=max_steps)
    print(f"learned simulator: {args.checkpoint or 'the shipped default checkpoint'} "
          f"({type(learned.backend).__name__})")
    real = make_real_env(task, max_episode_steps=max_steps)
    res = paired_rollout(real, learned, make_policy(task, "expert", args.seed), args.seed)
    print(f"\nexpert, seed {args.seed}: closed loop in both simulators (same first frame)")
    print(f"| step | frame PSNR real vs learned (dB, {real.embodiment.cameras[0].name}) | state error (spec units) "
          "| learned reward |")
    print("|---|---|---|---|")
    for t in range(0, res["steps"], max(1, res["steps"] // 10)):
        prob = res["learned"]["rewards"][t - 1] if t else 0.0
        print(f"| {t} | {min(res['psnr'][t], 99):.1f} | {res['state_error'][t]:.3g} | {prob:.2f} |")
    print(f"final: real success {res['real']['success']} after {res['real']['length']} steps;"
          f" learned success {res['learned']['success']} after {res['learned']['length']} steps")
    spec = real.embodiment
    names = {c.key: c.name for c in spec.cameras}
    frames = lambda run, n: {names[k]: v[:n] for k, v in run["cameras"].items()}  # noqa: E731
    calibs = {n: c for n, c in real.calibrations().items() if spec.camera(n).viewpoint != "wrist"} \
        if hasattr(real, "calibrations") else {}
    n = res["steps"]  # the common length: frames side by side and their difference
    log = RolloutLog(spec=spec, real=frames(res["real"], n), predicted=frames(res["learned"], n),
                     actions=res["real"]["actions"][:n], states=res["real"]["states"][:n],
                     predicted_states=res["learned"]["states"][:n], success_prob=res["learned"]["rewards"][:n],
                     disagreement=res["learned"].get("disagreement"), calibrations=calibs, name=f"demo_{task}",
                     action_variant=getattr(real, "action_variant", None))
    save_rollout(log, args.rrd)
    print(f"wrote {args.rrd} (open with `rerun {args.rrd}`)")
    info = task_info(task)
    policies, real_kwargs = list(info.demo_policies), dict(info.demo_real_kwargs)
    seeds = list(range(args.seed, args.seed + args.episodes))
    report = evaluate(policies, lambda name, seed: make_policy(task, name, seed), seeds,
                      make_vec_env=learned_vec_env(task, args.checkpoint, max_steps),
                      real_env=make_real_env(task, max_episode_steps=max_steps, **real_kwargs),
                      config=EvalConfig(progress=False, n_boot=200))
    paths = write_report(report, out)
    print(f"\nevaluation: {len(policies)} policies x {len(seeds)} seeds, {max_steps} steps max")
    print(paths["markdown"].read_text())
    return 0


def resume_eval(out, run_args: dict, overwrite: bool) -> dict:
    """What an earlier run into `out` finished (eval_partial.json with the same arguments), {} for a fresh
    start; a finished report or a partial one of other arguments is refused unless --overwrite."""
    import json

    partial_file, report = out / "eval_partial.json", out / "eval.json"
    if overwrite:
        partial_file.unlink(missing_ok=True)
        return {}
    if partial_file.is_file():
        try:
            earlier = json.loads(partial_file.read_text())
        except json.JSONDecodeError:
            earlier = {}
        if isinstance(earlier, dict) and earlier.get("args") == json.loads(json.dumps(run_args)):
            return earlier.get("policies", {})
        raise UserError(f"{str(partial_file)!r} is an unfinished eval with other arguments; rerun with the same "
                         "ones to resume it, pass --overwrite to discard it, or choose another --out")
    if report.is_file():
        raise UserError(f"{str(report)!r} already holds a finished eval; choose another --out or pass --overwrite "
                         "to replace it")
    return {}


def cmd_eval(args: argparse.Namespace) -> int:
    import json
    from functools import partial

    import numpy as np

    from .eval.policy_eval import EvalConfig, evaluate, read_real_results, write_report
    from .tasks import make_policy, make_real_env

    task = args.task
    if args.max_steps is None:
        args.max_steps = episode_limit(task)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies:
        raise UserError("--policies is empty; give comma-separated names, e.g. expert,random")
    for name in policies:  # unknown names fail now, not when their turn comes
        make_policy(task, name, 0)
    seeds = list(range(args.seed, args.seed + args.episodes))
    known = read_real_results(args.real_from, seeds) if args.real_from else None
    if args.real_budget is not None and args.real_budget > args.episodes:
        raise UserError(f"--real-budget {args.real_budget} is more than --episodes {args.episodes}: the real episodes "
                        "are the first K of the learned ones; lower it or raise --episodes")
    real = args.real or known is not None or args.real_budget is not None
    out = prepare_out(args.out)
    run_args = {"task": task, "policies": policies, "seeds": seeds, "checkpoint": args.checkpoint, "real": real,
                "real_from": args.real_from, "max_steps": args.max_steps}
    if args.samples > 1 or args.real_budget is not None:  # (absent otherwise: earlier partial runs still resume)
        run_args |= {"samples": args.samples, "real_budget": args.real_budget}
    members = [m.strip() for m in (args.members or "").split(",") if m.strip()]
    if members:
        if args.samples < len(members) + 1:
            raise UserError(f"--members gives {len(members) + 1} dynamics members with --checkpoint; --samples "
                            f"{args.samples} would leave some unused: give --samples {len(members) + 1} or more")
        run_args["members"] = members
    prior = resume_eval(out, run_args, args.overwrite)
    backend_kwargs = {"precision": args.precision} if args.precision else {}
    if args.runtime != "auto":
        backend_kwargs["runtime"] = args.runtime
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}; give 0 (this process) or more Ray workers")
    real_kwargs = {}
    if args.real_cameras is not None:  # render only what the policies read (a MuJoCo frame costs ~23 ms here)
        real_kwargs["cameras"] = [c.strip() for c in args.real_cameras.split(",") if c.strip()]
        cameras = [c.name for c in load_spec(task_info(task).embodiment).cameras]
        if len(cameras) < 2:
            raise UserError(f"--real-cameras: the {task} scene renders one camera ({cameras[0]}); the option picks "
                            "among several, drop it")
        make_real_env(task, **real_kwargs).close()  # a camera the scene lacks, or a scene without cameras=, fails now
    factory = partial(learned_vec_env, task, args.checkpoint, args.max_steps, **backend_kwargs)
    make_vec = factory() if args.workers == 0 else None  # Ray workers each load their own
    if members:
        if args.workers:
            raise UserError("--members runs in this process; drop --workers")
        make_vec = [make_vec, *(learned_vec_env(task, m, args.max_steps, **backend_kwargs) for m in members)]
        first = make_vec[0](1)
        for m, make in zip(members, make_vec[1:]):
            probe = make(1)
            if probe.single_observation_space != first.single_observation_space or \
                    probe.single_action_space != first.single_action_space:
                raise UserError(f"--members {m}: its observations or actions are not those of {task}'s "
                                f"{args.checkpoint or 'shipped checkpoint'}; give checkpoints of the same task")
            probe.close()
        first.close()
    done = dict(prior)

    def keep(name, rows):  # each finished policy is on disk before the next starts
        done[name] = {w: {k: np.asarray(v).tolist() for k, v in r.items()} for w, r in rows.items() if r is not None}
        tmp = out / "eval_partial.json.tmp"
        tmp.write_text(json.dumps({"seeds": seeds, "args": run_args, "policies": done}, indent=1))
        tmp.replace(out / "eval_partial.json")  # atomic: a kill leaves the previous complete file

    if prior:
        print(f"resuming: {sorted(prior)} already evaluated in {out / 'eval_partial.json'}", flush=True)

    report = evaluate(policies, partial(make_policy, task), seeds, make_vec_env=make_vec,
                      real_env=partial(make_real_env, task, max_episode_steps=args.max_steps, **real_kwargs) if real
                      else None,
                      config=EvalConfig(real_workers=args.real_workers if real else 0, workers=args.workers,
                                        address=args.address, flag_threshold=args.flag_disagreement,
                                        samples=args.samples, real_budget=args.real_budget),
                      on_policy=keep, real_results=known, vec_env_factory=factory, prior=prior)
    wire = {name: {"flavour": p.flavour, "action_space": p.action_space} for name in policies
            if name.startswith("openpi:") and (p := make_policy(task, name, 0))}  # what wire policies spoke
    if wire:
        report["wire"] = wire
    paths = write_report(report, out)
    (out / "eval_partial.json").unlink(missing_ok=True)
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_eval_fidelity(args: argparse.Namespace) -> int:
    from .eval.fidelity import fidelity_table, open_loop, record_with_states
    from .tasks import make_policy, make_real_env

    task = args.env
    try:
        horizons = tuple(int(h) for h in args.horizons.split(","))
    except ValueError:
        raise UserError(f"--horizons {args.horizons!r}: give comma-separated step counts, e.g. 1,4,16,32") from None
    if min(horizons) < 1 or args.steps <= max(horizons):
        raise UserError(f"--horizons {args.horizons} and --steps {args.steps}: horizons must be >= 1 and below --steps")
    success = task_info(task).success_kwarg
    real = make_real_env(task, max_episode_steps=10_000, **({success: 1.01} if success else {}))
    episodes = [record_with_states(real, make_policy(task, args.policy, s), s, args.steps)
                for s in range(args.seed, args.seed + args.episodes)]
    learned = learned_env(task, args.checkpoint, success_threshold=1.01)
    result = open_loop(learned, real, episodes, horizons, args.starts)
    print(f"open-loop fidelity on {args.episodes} held-out {args.policy} episodes (seeds {args.seed}..), "
          f"{args.starts} start frames each")
    print(fidelity_table(result))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from .datasets.lock import exclusive
    from .tasks import learned_env_id, make_policy

    policy = make_policy(args.env, args.policy, args.seed)  # an unknown name fails before the simulator starts
    task_max_steps(args)
    if args.sim == "real" and args.checkpoint:
        raise SystemExit("--checkpoint names a learned simulator; add --sim learned")
    if args.sim == "learned":
        learned_env_id(args.env)  # a task without a learned simulator fails here, with the fix
    with exclusive(args.out):  # one writer at a time: a second gets a clear refusal, the first completes
        return _collect_locked(args, policy)


def _collect_locked(args: argparse.Namespace, policy) -> int:
    from .eval.rollout import collect, make_writer
    from .tasks import learned_env_id, make_real_env

    prepare_out(args.out)
    kwargs = {"max_episode_steps": args.max_steps}
    meta = {}
    if args.sim == "learned":  # imagined data: each episode says so, with the checkpoint that imagined it
        import gymnasium as gym

        from .backends import checkpoint_path

        ckpt = args.checkpoint or gym.spec(learned_env_id(args.env)).kwargs["backend"]
        if args.success_threshold is not None:
            kwargs["success_threshold"] = args.success_threshold
        env = learned_env(args.env, ckpt, **kwargs)
        meta = {"imagined": True, "checkpoint": str(ckpt), "checkpoint_path": str(checkpoint_path(ckpt))}
    else:
        success = task_info(args.env).success_kwarg
        if success and args.success_threshold is not None:
            kwargs[success] = args.success_threshold
        env = make_real_env(args.env, **kwargs)
    extra = {}
    if hasattr(env, "action_variant"):
        extra["variant"] = env.action_variant
    if args.format == "lerobot":
        extra["quality"] = args.video_quality
        extra["vcodec"] = args.video_codec
    elif args.video_quality != "standard" or args.video_codec is not None:
        raise SystemExit("--video-quality and --video-codec apply to --format lerobot (DROID-layout episodes store "
                         "their own lossless MP4s)")
    if args.format == "droid" and hasattr(env, "calibrations"):
        # every camera's extrinsics at every step (the wrist camera moves); intrinsics of the fixed ones
        extra["calibrations"] = {n: c for n, c in env.calibrations().items()
                                 if env.embodiment.camera(n).viewpoint != "wrist"}
        extra["live_calibrations"] = env.calibrations
    if args.format == "droid":  # a scene that renders stereo and measures DROID's further robot state gives them
        for name in ("stereo", "robot_state_extras"):
            if hasattr(env, name):
                extra[name] = getattr(env, name)
    writer = make_writer(args.format, args.out, env.embodiment, **extra)
    before = len(writer.existing_episodes())
    try:
        results = collect(env, policy, args.episodes, writer, seed0=args.seed, env_name=args.env, meta=meta)
    except OSError as e:
        if e.errno == errno.ENOSPC:  # free what the unfinished episode took, so the disk is not left full
            roll_back(args.format, args.out, env.embodiment)
        raise
    writer.close()
    total = len(writer.existing_episodes())
    rate = f'{sum(r["success"] for r in results) / len(results):.2f}' if results else "- (nothing new)"
    what = f"learned {args.env} ({meta['checkpoint']}, imagined)" if meta else args.env
    print(f"collected {len(results)} new episodes ({before} already there, {total} now) of {policy.name} on"
          f" {what} into {args.out} [{args.format}]; success {rate}")
    return 0


def roll_back(fmt: str, out, spec) -> None:
    """Remove what an unfinished episode wrote (frames buffered, a half-saved episode), keeping finished ones."""
    import shutil

    from .datasets import recover_dataset

    if fmt == "lerobot":
        recover_dataset(out)
    else:  # DroidWriter writes an episode into a hidden .tmp-* folder and renames it when complete
        for partial in Path(out).glob(".tmp-*"):
            shutil.rmtree(partial, ignore_errors=True)


def cmd_convert_droid(args: argparse.Namespace) -> int:
    from .datasets import droid_to_lerobot

    from .datasets.lock import exclusive

    if args.layout == "lerobot-port":
        from .datasets.droid_io import droid_to_lerobot_port

        with exclusive(args.out):
            n = droid_to_lerobot_port(args.src, args.out)
        print(f"LeRobot dataset {args.out} holds {n} episodes from {args.src} in the layout of LeRobot's DROID port")
        return 0
    with exclusive(args.out):
        rec = droid_to_lerobot(args.src, args.out, vcodec=args.video_codec)
    skipped = f"; {rec.skipped} already converted, skipped" if rec.skipped else ""
    print(f"LeRobot dataset {args.out} holds {rec.num_episodes} episodes from {args.src}{skipped}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.world_model import TrainConfig, train

    cfg = TrainConfig(dataset=args.dataset, out=args.out, embodiment=args.embodiment, preset=args.preset,
                      steps=args.steps, tokenizer_steps=args.tokenizer_steps, judge_steps=args.judge_steps,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, save_every=args.save_every,
                      context=args.context, init=args.init, residual_frames=args.residual_frames,
                      context_noise=args.context_noise, sample_noise=args.sample_noise,
                      judge_imagined=args.judge_imagined, action_to_frames=args.action_to_frames,
                      frame_prediction=args.frame_prediction, motion_weight=args.motion_weight,
                      forward_share=args.forward_share, time_shift=args.time_shift,
                      tokenizer_detail_weight=args.tokenizer_detail_weight, frame_pos_embed=args.frame_pos_embed,
                      frame_t1_share=args.frame_t1_share, sample_steps=args.sample_steps,
                      frame_head=args.frame_head, rollout_steps=args.rollout_steps,
                      rollout_share=args.rollout_share, perceive_state=args.perceive_state,
                      conv_head_state=args.conv_head_state, hint_teacher=args.hint_teacher, hint_noise=args.hint_noise,
                      state_geometry=args.state_geometry, residual_state=args.residual_state,
                      render_steps=args.render_steps, state_weight=args.state_weight, overwrite=args.overwrite)
    train(cfg)
    print(f"trained {args.preset} world model on {args.dataset}; checkpoint in {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from functools import partial

    from .backends import checkpoint_path
    from .backends.registry import read_raw_config
    from .serve import serve
    from .tasks import make_policy

    kwargs = {"runtime": args.runtime} if args.runtime != "auto" else {}
    if args.policy is not None:  # an unknown name fails before the server starts
        task = read_raw_config(checkpoint_path(args.checkpoint)).get("embodiment") or default_task("serve")
        make_policy(task, args.policy, 0)
        kwargs["policy_factory"] = partial(make_policy, task, args.policy, 0)
    print(f"serving {args.checkpoint} on http://{args.host}:{args.port} (vLLM-Omni video API: POST /v1/videos/sync)",
          flush=True)
    from .serve.video_api import ServeLimits

    for name in ("max_num_frames", "max_upload_mb", "max_queue"):
        if not getattr(args, name) >= 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: must be at least 1")
        import torch

        torch.set_num_threads(args.threads)  # torch's and (through it) ONNX Runtime's intra-op threads
    limits = ServeLimits(max_num_frames=args.max_num_frames, max_upload_mb=args.max_upload_mb,
                         max_queue=args.max_queue)
    serve(args.checkpoint, host=args.host, port=args.port, limits=limits, api_key=args.api_key,
          served_model_name=args.served_model_name, **kwargs)
    return 0


def policy_imaginer(task: str):
    """imagine(session, policy, observation, H) -> the policy's next H actions and the states they run from,
    rolled through the task's learned simulator (one per connection); None where the task has none."""
    import numpy as np

    if task_info(task).learned_id is None:
        return None

    from .embodiments import load_spec
    from .embodiments.state_completion import complete_state

    spec = load_spec(task_info(task).embodiment)

    # the most a state field moves in one control step: the max_delta of the velocity field that integrates it
    rates = {f.integrates: f.max_delta for v in spec.actions.values() for f in v.fields if f.integrates}

    def follows(obs, action):
        """The next observation if the robot moves toward its command at its rated speed: the action's fields
        land on the state fields of the same order (joint_position -> joint_positions, gripper_position), each at
        most its velocity field's max_delta a step; the rest of the state is completed (the arm's pose)."""
        state = np.asarray(obs["observation.state"], np.float64)
        sl = spec.state.slices()
        variant = spec.action_variant(getattr(learned, "action_variant", None))
        parts = np.split(np.asarray(action, np.float64), np.cumsum([f.dims for f in variant.fields])[:-1])
        moved = {}
        for field, part in zip(sl, parts):
            now = state[sl[field]]
            rate = rates.get(field)
            moved[field] = part if rate is None else now + np.clip(part - now, -rate, rate)
        kept = {f: state[s] for f, s in sl.items() if f not in moved}
        return {**obs, "observation.state": complete_state(spec, {**kept, **moved}).astype(np.float32)}

    learned = None

    def imagine(session, policy, observation, horizon):
        nonlocal learned
        if "env" not in session:
            session["env"] = learned = learned_env(task, success_threshold=1.01)
        env = session["env"]
        try:
            obs, _ = env.reset(seed=0, options={"observation": observation})  # seeded: the same chunk every time
        except UserError:  # the learned scene cannot start from this view (a camera missing): the arm follows
            obs, env = observation, None
        targets, states = [], []
        for _ in range(horizon):
            action = np.asarray(policy.select_action(obs), np.float64)
            targets.append(action)
            states.append(np.asarray(obs["observation.state"], np.float64))
            obs = env.step(action)[0] if env is not None else follows(obs, action)
        return np.stack(targets), np.stack(states)

    return imagine


def cmd_serve_policy(args: argparse.Namespace) -> int:
    from functools import partial

    from .embodiments import load_spec
    from .serve.openpi import PolicyServer, _serve
    from .tasks import make_policy

    make_policy(args.env, args.policy, args.seed)  # an unknown name fails now
    imagine = policy_imaginer(args.env)
    chunk = args.chunk if args.chunk is not None else (10 if imagine is not None else 1)
    server = PolicyServer(partial(make_policy, args.env, args.policy, args.seed), load_spec(task_info(args.env).embodiment), args.protocol,
                          args.action_space, chunk, imagine, args.max_message_mb)
    print(f"serving {args.policy} ({args.env}) over {args.protocol}'s protocol on ws://{args.host}:{args.port}, "
          f"chunks of {chunk}, action space {server.action_space or 'the spec default'}", flush=True)
    import asyncio

    asyncio.run(_serve(server, args.host, args.port))
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from .backends import checkpoint_path
    from .backends.structured import export_graphs

    files = export_graphs(checkpoint_path(args.checkpoint))
    print("\n".join(str(f) for f in files))
    return 0


def _sink(args) -> dict:
    return {"spawn": args.spawn, "serve": args.serve}


def cmd_view(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .datasets import list_droid_episodes, load_episodes, read_droid_episode
    from .viz import episode_log, log_rollout, open_recording

    root = Path(args.dataset)
    args.rrd = args.rrd or f"{root.name}_episode{args.episode}.rrd"
    prepare_rrd(args)
    if (root / "meta" / "info.json").is_file():
        ep = load_episodes(root, episodes=[args.episode])[0]
        # --embodiment, else the sidecar of datasets we collected, else lerobot's robot_type where it names a spec
        from .datasets.lerobot_io import dataset_embodiment

        spec = dataset_embodiment(root, args.embodiment or ep["meta"].get("embodiment") or ep["meta"].get("env"))
    else:
        paths = list_droid_episodes(root)
        if not 0 <= args.episode < len(paths):
            raise UserError(f"--episode {args.episode} is out of range: {len(paths)} DROID-layout episodes in {root}")
        ep = read_droid_episode(paths[args.episode])
        spec = ep["metadata"]["embodiment"]
    rrd = args.rrd
    log = episode_log(ep, spec, name=f"{root.name}/episode_{args.episode}")
    rec = open_recording(log.name, rrd, **_sink(args))
    log_rollout(log, rec)
    rec.flush()
    print(f"logged episode {args.episode} of {root} ({len(log)} steps)" + ("" if args.spawn or args.serve else f" to {rrd}"))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from .eval import paired_rollout, record
    from .tasks import make_policy, make_real_env
    from .viz import RolloutLog, log_rollout, open_recording

    prepare_rrd(args)
    task_max_steps(args)
    policy = make_policy(args.env, args.policy, args.seed)
    learned = learned_env(args.env, args.checkpoint, max_episode_steps=args.max_steps) if args.sim != "real" else None
    real = make_real_env(args.env, max_episode_steps=args.max_steps) if args.sim != "learned" else None
    spec = (real or learned).embodiment
    cam = spec.cameras[0].name
    if args.sim == "both":
        res = paired_rollout(real, learned, policy, args.seed)
        n = res["steps"]
        log = RolloutLog(spec=spec, real={cam: res["real"]["frames"][:n]}, predicted={cam: res["learned"]["frames"][:n]},
                         actions=res["real"]["actions"][:n], states=res["real"]["states"][:n],
                         success_prob=res["learned"]["rewards"][:n], disagreement=res["learned"].get("disagreement"),
                         name=f"{args.policy}-seed{args.seed}", action_variant=getattr(real, "action_variant", None))
        summary = (f"real success {res['real']['success']} in {res['real']['length']} steps, learned success "
                   f"{res['learned']['success']} in {res['learned']['length']}; mean frame PSNR {res['psnr'].mean():.1f} dB")
    else:
        env = real or learned
        if hasattr(policy, "plans"):  # a policy head that imagines each chunk: its future beside what happened
            policy.imagine = True
        ep = record(env, policy, args.seed)
        frames = {cam: ep["frames"]}
        predicted, predicted_states = ({} if real else frames), None
        if getattr(policy, "plans", None) and real:
            from .policies.structured_policy import imagined_track

            predicted, predicted_states = imagined_track(policy.plans, {cam: ep["frames"][0]}, ep["states"][0],
                                                         len(ep["frames"]))
        log = RolloutLog(spec=spec, real=frames if real else {}, predicted=predicted, predicted_states=predicted_states,
                         actions=ep["actions"], states=ep["states"],
                         success_prob=None if real else ep["rewards"], disagreement=ep.get("disagreement"),
                         name=f"{args.policy}-seed{args.seed}", action_variant=getattr(env, "action_variant", None))
        summary = f"{args.sim} success {ep['success']} in {ep['length']} steps"
        if predicted_states is not None:
            summary += f"; the policy's imagined future is logged as the predicted frames ({len(policy.plans)} chunks)"
    rec = open_recording(log.name, args.rrd, **_sink(args))
    log_rollout(log, rec)
    rec.flush()
    print(summary + ("" if args.spawn or args.serve else f"; wrote {args.rrd}"))
    return 0


def _add_sinks(p):
    p.add_argument("--rrd", default=None, help="write a .rrd file (default)")
    p.add_argument("--spawn", action="store_true", help="spawn a local Rerun viewer instead")
    p.add_argument("--serve", action="store_true", help="serve the Rerun web viewer instead")


def cmd_train_sim(args: argparse.Namespace) -> int:
    from .backends.registry import resolve_entry_point

    from .tasks import REGISTRY

    info = task_info(args.task)
    if not info.trainer:
        trained = [t.name for t in REGISTRY.values() if t.trainer]
        raise UserError(f"--task {info.name}: no learned-simulator recipe is registered for it (tasks with one: "
                         f"{trained}); see docs/adding_a_task.md")
    if args.collect < 0:
        raise UserError(f"--collect {args.collect}; give 0 (use the data in --dataset) or more episodes")
    resolve_entry_point(info.trainer)(args.dataset, args.out, seed=args.seed, collect=args.collect,
                                      overwrite=args.overwrite)
    print(f"wrote {args.out}")
    return 0


def add_train_sim_parser(sub) -> None:
    p = sub.add_parser("train-sim", help="a task's learned simulator, by its own recipe (collect, renderer, "
                                         "dynamics, physics numbers)")
    p.add_argument("--task", required=True, choices=task_choices())
    p.add_argument("--dataset", required=True, help="the task's training data (collected into it with --collect)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--collect", type=int, default=0, help="collect this many episodes into --dataset first "
                                                          "(finished ones are kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_train_sim)


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the shipped defaults")
    p.add_argument("--env", "--task", dest="env", default=default_task("demo"), choices=task_choices(demo=True),
                   help="the task (--task is the same option)")
    p.add_argument("--checkpoint", default=None, help="world-model checkpoint (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="default: the task's demo length "
                   f"({', '.join(f'{t.name} {t.demo_steps or t.episode_limit}' for t in task_infos(demo=True))})")
    p.add_argument("--episodes", type=int, default=4, help="seeds per policy in the evaluation table")
    p.add_argument("--rrd", default="outputs/demo.rrd")
    p.add_argument("--out", default="outputs/demo_eval")
    p.set_defaults(func=cmd_demo)


def add_embodiments_parser(sub) -> None:
    p = sub.add_parser("embodiments", help="table of all embodiment specs, or one spec in full")
    p.add_argument("name", nargs="?", help="one embodiment to show in full")
    p.set_defaults(func=cmd_embodiments)


def add_collect_parser(sub) -> None:
    p = sub.add_parser("collect", help="closed-loop data collection from a real or a learned simulator")
    p.add_argument("--env", "--task", dest="env", default=default_task("collect"), choices=task_choices(),
                   help="the task (--task is the same option)")
    p.add_argument("--policy", default="expert",
                   help="a policy of the task's ladder (expert, expert-noise..., see docs/adding_a_task.md), random")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", required=True, help="dataset directory (appended to if it exists)")
    p.add_argument("--format", default="lerobot", choices=["lerobot", "droid"])
    p.add_argument("--seed", type=int, default=0, help="first episode seed (episodes use seed, seed+1, ...)")
    p.add_argument("--max-steps", type=int, default=None, help="default: the task's episode limit")
    p.add_argument("--sim", default="real", choices=["real", "learned"],
                   help="learned: record imagined episodes from the task's learned simulator (marked imagined)")
    p.add_argument("--checkpoint", default=None, help="with --sim learned: the checkpoint (default: the shipped one)")
    p.add_argument("--success-threshold", type=float, default=None,
                   help="the task's success threshold, for tasks whose real env takes one (default: the env's own)")
    p.add_argument("--video-quality", default="standard", choices=["standard", "lossless"],
                   help="lerobot format: standard = lerobot 0.6.1's default encoding (AV1, yuv420p, CRF 30: small, "
                        "lossy; merges with LeRobot's hub datasets); lossless = H.264 4:4:4 at CRF 0, for world-model "
                        "training data (lerobot's aggregate_datasets merges it only with data encoded the same way)")
    p.add_argument("--video-codec", default=None, choices=["libsvtav1", "h264"],
                   help="lerobot format: override the codec (default: libsvtav1 for standard, h264 for lossless); "
                        "appending to a dataset keeps the dataset's own")
    p.set_defaults(func=cmd_collect)


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the world model (tokenizer, world model, judge) on a dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="checkpoint directory (resumed if a run was interrupted)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished checkpoint already at --out")
    p.add_argument("--embodiment", default=None, help="default: the dataset's (our records, or lerobot's robot_type)")
    p.add_argument("--preset", default="small", choices=["tiny", "small"])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--tokenizer-steps", type=int, default=1500)
    p.add_argument("--judge-steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--context", type=int, default=2)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--residual-frames", action=argparse.BooleanOptionalAction, default=None,
                   help="generate frames as a change from the last one (--no-residual-frames: absolute frames)")
    p.add_argument("--init", default=None, help="continue from this checkpoint's weights (skips the tokenizer)")
    p.add_argument("--context-noise", type=float, default=0.0,
                   help="corrupt training context with noise up to this scale (against closed-loop drift)")
    p.add_argument("--sample-noise", type=float, default=1.0,
                   help="starting-noise scale of the learned env's sampler, stored in the checkpoint")
    p.add_argument("--judge-imagined", type=float, default=0.0,
                   help="judge stage: fraction of frames replaced by the model's own one-step predictions")
    p.add_argument("--action-to-frames", action="store_true",
                   help="add each action's embedding to the tokens of the frame it leads to (zero-initialized)")
    p.add_argument("--frame-prediction", choices=["velocity", "x0"], default=None,
                   help="frame head target (default: the preset's or --init checkpoint's); x0 predicts the clean"
                        " latents")
    p.add_argument("--motion-weight", type=float, default=0.0,
                   help="extra frame-loss weight on latents that change from the last context frame")
    p.add_argument("--forward-share", type=float, default=None,
                   help="fraction of training examples in forward-dynamics mode (the rest keep their ratios)")
    p.add_argument("--tokenizer-detail-weight", type=float, default=0.0,
                   help="extra frame-tokenizer loss weight on pixels off the background colour (small objects)")
    p.add_argument("--frame-t1-share", type=float, default=0.0,
                   help="fraction of examples whose frames start from pure noise (predicted from context + action)")
    p.add_argument("--sample-steps", type=int, default=None, help="the learned env's Euler steps (stored)")
    p.add_argument("--frame-head", choices=("linear", "conv"), default=None,
                   help="generator frame output: per-token linear, or a conv net over the latent grid"
                        " (a new head starts fresh on --init)")
    p.add_argument("--rollout-steps", type=int, default=0,
                   help="train part of the windows on the model's own context, imagined this many steps ahead")
    p.add_argument("--rollout-share", type=float, default=0.5, help="fraction of windows with --rollout-steps")
    p.add_argument("--perceive-state", default=None,
                   help="append a perceived state read off the frames to the model's state (a perceiver a task "
                        "registers)")
    p.add_argument("--conv-head-state", type=int, default=None,
                   help="the conv frame head draws the frame from this many leading state dims (a new head starts fresh)")
    p.add_argument("--hint-teacher", type=float, default=0.5,
                   help="with --conv-head-state: fraction of examples whose frame head reads the true (noised) state")
    p.add_argument("--hint-noise", type=float, default=0.01, help="std of the noise on that true state")
    p.add_argument("--state-weight", type=float, default=1.0, help="state-loss weight (1 = as the frames)")
    p.add_argument("--render-steps", type=int, default=0,
                   help="first train the conv frame head alone to draw frames from the true state (needs --conv-head-state)")
    p.add_argument("--state-geometry", default=None,
                   help="draw those state dims as planar geometry, e.g. 'point:0,pose:2' (a point at dim 0, a pose "
                        "at 2)")
    p.add_argument("--residual-state", action=argparse.BooleanOptionalAction, default=None,
                   help="generate the future state as a change from the last context state")
    p.add_argument("--frame-pos-embed", action="store_true",
                   help="add a learned absolute position embedding to generator frame tokens")
    p.add_argument("--time-shift", type=float, default=None,
                   help="flow time shift toward noise (> 1: more training where frames must come from the"
                        " conditioning); also the sampler's schedule")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a checkpoint over vLLM-Omni's Cosmos 3 video API (forward dynamics)")
    p.add_argument("--checkpoint", default=task_info(default_task("serve")).checkpoint,
                   help="a checkpoint directory or shipped name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnxruntime"])
    p.add_argument("--policy", default=None, help="a policy name that answers POST /v1/videos policy jobs")
    p.add_argument("--served-model-name", default=None, help="the model name clients send (default: --checkpoint)")
    p.add_argument("--api-key", default=os.environ.get("COSMOS3_ROBOT_API_KEY"),
                   help="ask for 'Authorization: Bearer KEY' on /v1/* (default: $COSMOS3_ROBOT_API_KEY; none)")
    p.add_argument("--max-num-frames", type=int, default=1025, help="the most frames one request may ask for")
    p.add_argument("--max-upload-mb", type=float, default=64.0, help="the largest input_reference accepted (MiB)")
    p.add_argument("--max-queue", type=int, default=16, help="async jobs that may wait; more get a 429")
    p.add_argument("--threads", type=int, default=None,
                   help="the model's threads (default: all cores); 1 on a machine shared with its clients")
    p.set_defaults(func=cmd_serve)



def add_serve_policy_parser(sub) -> None:
    p = sub.add_parser("serve-policy", help="serve a policy over openpi's websocket protocol")
    p.add_argument("--env", "--task", dest="env", default=default_task("serve-policy"), choices=task_choices())
    p.add_argument("--policy", default="expert", help="a ladder name, random, or lerobot:<pretrained_model dir>")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--chunk", type=int, default=None,
                   help="actions per reply (default 10, as openpi's DROID example asserts; 1 without a learned "
                        "simulator to imagine the policy's next actions)")
    p.add_argument("--protocol", default="openpi", choices=["openpi", "vllm-omni"],
                   help="openpi's server (dict replies) or vLLM-Omni's OpenPI endpoint (PolicyServerConfig, bare arrays)")
    p.add_argument("--action-space", default=None, choices=["joint_velocity", "joint_position"],
                   help="DROID action space on the wire (default: joint_velocity for openpi, as pi05_droid; "
                        "joint_position for vllm-omni, as Cosmos3's DROID policy)")
    p.add_argument("--max-message-mb", type=float, default=64.0, help="the largest observation accepted")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_serve_policy)



def add_export_onnx_parser(sub) -> None:
    p = sub.add_parser("export-onnx", help="write the ONNX graphs a structured checkpoint runs under ONNX Runtime "
                                           "into its onnx/ folder (otherwise exported once into the user cache)")
    p.add_argument("checkpoint", help="a structured checkpoint directory or a shipped checkpoint name")
    p.set_defaults(func=cmd_export_onnx)



def add_eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate policies in the learned (and real) simulator, compare rankings")
    p.add_argument("--policies", default="expert,expert-noise0.2,expert-noise0.4,random",
                   help="comma-separated names; lerobot:<dir> loads a lerobot pretrained_model directory")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", "--env", dest="task", default=default_task("eval"), choices=task_choices(learned=True),
                   help="task whose learned simulator to evaluate")
    p.add_argument("--real-cameras", default=None,
                   help="render only these cameras of the real scene, comma-separated (e.g. the one camera the "
                        "scripted ladder reads); default all")
    p.add_argument("--real", action="store_true", help="also run the real simulator from the same seeds")
    p.add_argument("--samples", type=int, default=1,
                   help="learned rollouts per initial state on independent noise streams; > 1 gives each state a "
                        "success probability (the report's trust numbers)")
    p.add_argument("--members", default=None,
                   help="other checkpoints of the task, comma-separated, whose dynamics were trained apart from "
                        "--checkpoint's: with --samples N, sample j runs on member j mod M (--checkpoint first) and "
                        "its noise stream j div M, so the success probability spans models, not only noise")
    p.add_argument("--real-budget", type=int, default=None,
                   help="run only the first K initial states in the real simulator (implies --real) and estimate "
                        "each policy's real success from them and the learned episodes, with a 95%% interval "
                        "(prediction-powered inference)")
    p.add_argument("--real-workers", type=int, default=1,
                   help="processes that run the real simulator while the learned one runs (0: one after the other)")
    p.add_argument("--precision", default=None, choices=["float32", "bfloat16"],
                   help="structured backends: the renderer's precision (bfloat16: faster on CPUs with AMX)")
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="structured backends: run the networks eagerly (torch) or as ONNX graphs (auto: onnxruntime)")
    p.add_argument("--real-from", default=None,
                   help="reuse the real simulator's results of an earlier eval.json with the same seeds (implies --real)")
    p.add_argument("--workers", type=int, default=0,
                   help="Ray workers that run (policy, seed batch) tasks in parallel; 0: this process alone")
    p.add_argument("--address", default=None, help="with --workers: a Ray cluster (ray://host:port); default local")
    p.add_argument("--flag-disagreement", type=float, default=None,
                   help="flag learned episodes whose mean disagreement (the backend's uncertainty) exceeds this")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--max-steps", type=int, default=None,
                   help="episode length limit; default the task's")
    p.add_argument("--out", default="outputs/eval")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished eval in --out, or discard an unfinished one of other arguments")
    p.set_defaults(func=cmd_eval)


def add_eval_fidelity_parser(sub) -> None:
    p = sub.add_parser("eval-fidelity", help="open-loop PSNR/SSIM of the learned simulator on held-out episodes")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--env", "--task", dest="env", default=default_task("eval-fidelity"),
                   choices=task_choices(learned=True))
    p.add_argument("--policy", default="expert-noise0.2", help="a policy of the task's ladder")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seed", type=int, default=5000, help="first held-out seed (training used 1000-1719)")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--horizons", default="1,4,16,32")
    p.set_defaults(func=cmd_eval_fidelity)


def add_view_parser(sub) -> None:
    p = sub.add_parser("view", help="log a LeRobot or DROID-layout episode to Rerun")
    p.add_argument("dataset")
    p.add_argument("--episode", type=int, default=0)
    p.add_argument("--embodiment", default=None,
                   help="the spec of a LeRobot dataset that does not name one (see `cosmos3-robot embodiments`)")
    _add_sinks(p)
    p.set_defaults(func=cmd_view)


def add_rollout_parser(sub) -> None:
    p = sub.add_parser("rollout", help="run and log a closed-loop rollout (real, learned, or both)")
    p.add_argument("--env", "--task", dest="env", default=default_task("rollout"), choices=task_choices())
    p.add_argument("--policy", default="expert")
    p.add_argument("--sim", default="both", choices=["real", "learned", "both"])
    p.add_argument("--checkpoint", default=None, help="world-model checkpoint (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="default: the task's episode limit")
    _add_sinks(p)
    p.set_defaults(func=cmd_rollout, rrd="rollout.rrd")


def add_convert_droid_parser(sub) -> None:
    p = sub.add_parser("convert-droid", help="convert DROID-layout episodes into a LeRobot dataset")
    p.add_argument("src")
    p.add_argument("--out", required=True)
    p.add_argument("--video-codec", default=None, choices=["libsvtav1", "h264"],
                   help="--layout spec: the codec (default: lerobot's, AV1; appending keeps the dataset's own)")
    p.add_argument("--layout", default="spec", choices=["spec", "lerobot-port"],
                   help="spec (default): the embodiment spec's features (the 14-D state with the cartesian pose, "
                        "the recorded action), what this package's simulators and policies read, appended to and "
                        "resumable; lerobot-port: the layout of LeRobot's own DROID port (examples/port_datasets/"
                        "port_droid.py: 8-D state and action, DROID's sub-features, the spec's port_robot_type), "
                        "written whole")
    p.set_defaults(func=cmd_convert_droid)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cosmos3-robot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(sub)
    add_embodiments_parser(sub)
    add_collect_parser(sub)
    add_train_parser(sub)
    add_train_sim_parser(sub)
    from .backends.registry import resolve_entry_point

    for info in task_infos():  # a task's own commands (TaskInfo.commands)
        if info.commands:
            resolve_entry_point(info.commands)(sub)
    add_serve_parser(sub)
    add_serve_policy_parser(sub)
    add_export_onnx_parser(sub)
    add_eval_parser(sub)
    add_eval_fidelity_parser(sub)
    add_view_parser(sub)
    add_rollout_parser(sub)
    add_convert_droid_parser(sub)
    return parser


# the least value each numeric option takes (per command where they differ); checked before any work
MINIMA = {"episodes": 1, "max_steps": 1, "seed": 0, "episode": 0, "starts": 1, "real_workers": 0, "steps": 0,
          "tokenizer_steps": 0, "judge_steps": 0, "batch_size": 1, "save_every": 1, "context": 1, "width": 1,
          "epochs": 1, "render_steps": 0, "pixel_steps": 0, "random_frames": 0, "render_batch": 1,
          "render_width": 1, "render_layers": 2, "lr": 1e-12, "samples": 1, "real_budget": 2}
COMMAND_MINIMA = {"eval-fidelity": {"steps": 2}}


def check_numbers(args: argparse.Namespace) -> None:
    import math

    for name, value in vars(args).items():  # nan and inf pass every comparison check below
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--{name.replace('_', '-')} {value}: give a finite number")
    minima = {**MINIMA, **COMMAND_MINIMA.get(args.command, {})}
    for name, least in minima.items():
        value = getattr(args, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not value >= least:
            raise UserError(f"--{name.replace('_', '-')} {value}: give at least {least:g}")


def run_step(argv: list[str]) -> None:
    """One command of a recipe (`train-sim`): run it, and stop the recipe if it fails (its error is printed)."""
    if main(argv) != 0:
        raise UserError(f"stopped: `cosmos3-robot {' '.join(argv)}` failed (its error is above); fix that and rerun, "
                         "finished steps are kept")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_numbers(args)
        for key in ("env", "task"):  # an earlier task name works, with a deprecation line
            if isinstance(getattr(args, key, None), str):
                setattr(args, key, task_info(getattr(args, key), warn=True).name)
        return args.func(args)
    except (UserError, FileNotFoundError) as e:  # bad user input: one clear line, no traceback (a bug keeps its own)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        print(f"error: the disk is full ({e.filename or 'writing output'}); nothing finished was lost and the work in "
              "progress was rolled back: free some space and rerun the same command to continue", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
