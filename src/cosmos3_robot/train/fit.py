"""The one training loop. Every fit in the package (frame tokenizer, world model stages, renderer, task
dynamics heads, the arms' joint servos through `fit_servo`) hands `fit` a loss function of the step and its
optimizer; `fit` does the update, the progress bar and the log records, so they all behave and log alike."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


class JsonlLogger:
    """Appends one JSON record per line to `path` (None: records are dropped, e.g. on non-zero DDP ranks);
    each record gets the seconds since the logger was made."""

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        self.t0 = time.time()

    def __call__(self, record: dict) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({**record, "seconds": round(time.time() - self.t0, 3)}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def fit(loss_fn: Callable[[int], torch.Tensor | dict], opt: torch.optim.Optimizer, steps: int, *,
        sched=None, start: int = 0, clip: float | None = None, stage: str = "fit", log: Callable | None = None,
        log_every: int = 100, progress: bool = True, on_step: Callable[[int], None] | None = None) -> dict:
    """Run optimizer steps `start`..`steps`-1. `loss_fn(step)` returns the loss, or a dict of named losses with
    the one to minimize under "loss". Every `log_every` steps (and the last) the losses go to the progress
    bar and to `log({"stage", "step", <losses>})`; `on_step(step)` runs after each update (checkpoints).
    Returns the last step's losses as floats."""
    params = [p for group in opt.param_groups for p in group["params"]]
    bar = tqdm(range(start, steps), desc=stage, disable=not progress, initial=start, total=steps)
    losses: dict = {}
    for step in bar:
        out = loss_fn(step)
        losses = out if isinstance(out, dict) else {"loss": out}
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if sched is not None:
            sched.step()
        if step % log_every == 0 or step == steps - 1:
            values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}
            bar.set_postfix(loss=f"{values['loss']:.5f}")
            if log is not None:
                log({"stage": stage, "step": step, **values})
        if on_step is not None:
            on_step(step)
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}


def fit_servo(servo: torch.nn.Module, now, prev, action, nxt, context, steps: int, seed: int, *, stage: str,
              log=None, progress: bool = True) -> dict:
    """Fit a learned joint servo: `servo(now, prev, action, context)` predicts the step's change in units of its
    `SCALE`, `(nxt - now) / servo.SCALE`; arrays (N, ...) of transitions. Batches of 512 drawn by a generator
    seeded `seed`, AdamW with a one-cycle schedule at 2e-3. Returns the step count, transitions and last losses."""
    now, prev, action, nxt, context = (torch.from_numpy(np.concatenate(x)).float()
                                       for x in (now, prev, action, nxt, context))
    target = (nxt - now) / servo.SCALE
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(servo.parameters(), 2e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)

    def loss_fn(step):
        idx = torch.randint(0, len(now), (512,), generator=gen)
        return {"loss": ((servo(now[idx], prev[idx], action[idx], context[idx]) - target[idx]) ** 2).mean()}

    servo.train()
    last = fit(loss_fn, opt, steps, sched=sched, stage=stage, log=log, progress=progress)
    servo.eval()
    return {"steps": steps, "transitions": len(now), **last}
