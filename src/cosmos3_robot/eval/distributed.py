"""Policy evaluation fanned out over Ray actors: (policy, seed batch, simulator) tasks go to `workers` actors,
each of which builds its own learned env (one backend load per actor) and real env once and keeps them.
The seed batches are the ones the serial run uses (`run_learned`'s batch), so every episode runs exactly
as it does serially and the report is identical. A local Ray cluster is started unless `address` names one
(`ray://host:port` or "auto")."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from .episodes import run_learned, run_real


class EvalWorker:
    """One Ray actor: its envs, built on first use, and the tasks it runs."""

    def __init__(self, make_policy, vec_env_factory, real_env, threads: int = 1):
        import torch

        torch.set_num_threads(threads)  # one core per actor: more threads only wait on each other
        self.make_policy, self.vec_env_factory, self.real_env = make_policy, vec_env_factory, real_env
        self._make_vec = self._real = None

    def run(self, name: str, where: str, seeds: list[int], batch: int) -> tuple[str, str, list[int], dict]:
        if where == "learned":
            if self._make_vec is None:
                self._make_vec = self.vec_env_factory()
            out = run_learned(self.make_policy, name, seeds, self._make_vec, batch=batch)
        else:
            if self._real is None:
                self._real = self.real_env() if callable(self.real_env) else self.real_env
            out = run_real(self.make_policy, name, seeds, self._real)
        return name, where, seeds, out


def run_on_ray(policies: list[str], make_policy, seeds: list[int], vec_env_factory=None, real_env=None,
               workers: int = 2, address: str | None = None, batch: int = 50, progress: bool = True,
               skip_real: set | None = None) -> tuple[dict, dict]:
    """-> (learned, real): name -> results as `run_learned` / `run_real` give them, for every policy (real ones
    except those in `skip_real`). `vec_env_factory()` -> make_vec_env; it, `make_policy` and `real_env` must be
    picklable (module-level functions or functools.partial)."""
    import ray

    if workers < 1:
        raise ValueError(f"workers={workers}; give at least 1")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        actor = ray.remote(num_cpus=1)(EvalWorker)
        actors = [actor.remote(make_policy, vec_env_factory, real_env) for _ in range(workers)]
        chunks = [seeds[i : i + batch] for i in range(0, len(seeds), batch)]
        tasks = [(name, "learned", c) for name in policies for c in chunks if vec_env_factory is not None]
        tasks += [(name, "real", c) for name in policies if real_env is not None and name not in (skip_real or set())
                  for c in chunks]
        pool = ray.util.ActorPool(actors)
        parts: dict = {}
        bar = tqdm(total=sum(len(c) for *_, c in tasks), desc="episodes", disable=not progress)
        for name, where, chunk, out in pool.map_unordered(lambda a, t: a.run.remote(*t, batch), tasks):
            parts.setdefault((name, where), []).append((seeds.index(chunk[0]), out))
            bar.update(len(chunk))
        bar.close()
    finally:
        if started:
            ray.shutdown()
    results: tuple[dict, dict] = ({}, {})
    for (name, where), pieces in parts.items():
        pieces.sort(key=lambda p: p[0])  # back in seed order
        keys = pieces[0][1].keys()
        results[0 if where == "learned" else 1][name] = {k: np.concatenate([p[1][k] for p in pieces]) for k in keys}
    return results
