"""Policy evaluation fanned out over Ray actors: (policy, seed batch) tasks of the learned simulator go to
the actors, each of which builds its own learned env once (one backend load per actor); the seed batches are
the ones the serial run uses (`run_learned`'s batch), so every learned episode runs as it does serially. The
real simulator's episodes run on one more actor, policy after policy on one env, as the serial run's real
worker runs them (a physics engine whose contact order follows memory addresses can still move the last bits
of a return from run to run). A local Ray cluster is started unless `address` names one (`ray://host:port` or
"auto")."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from .episodes import run_learned, run_real
from ..errors import UserError


class EvalWorker:
    """One Ray actor: its envs, built on first use, and the tasks it runs."""

    def __init__(self, make_policy, vec_env_factory, real_env, threads: int = 1):
        import torch

        torch.set_num_threads(threads)  # one core per actor: more threads only wait on each other
        self.make_policy, self.vec_env_factory, self.real_env = make_policy, vec_env_factory, real_env
        self._make_vec = self._real = None

    def run_real_all(self, names: list[str], seeds: list[int]) -> dict:
        """Every policy's real episodes in order on one env, as the serial run does."""
        return {name: self.run(name, "real", seeds, len(seeds))[3] for name in names}

    def run(self, name: str, where: str, seeds: list[int], batch: int,
            samples: int = 1) -> tuple[str, str, list[int], dict]:
        if where == "learned":
            if self._make_vec is None:
                self._make_vec = self.vec_env_factory()
            out = run_learned(self.make_policy, name, seeds, self._make_vec, batch=batch, samples=samples)
        else:
            if self._real is None:
                self._real = self.real_env() if callable(self.real_env) else self.real_env
            out = run_real(self.make_policy, name, seeds, self._real)
        return name, where, seeds, out


def run_on_ray(policies: list[str], make_policy, seeds: list[int], vec_env_factory=None, real_env=None,
               workers: int = 2, address: str | None = None, batch: int = 50, progress: bool = True,
               skip_real: set | None = None, samples: int = 1,
               real_seeds: list[int] | None = None) -> tuple[dict, dict]:
    """-> (learned, real): name -> results as `run_learned` / `run_real` give them, for every policy (real ones
    except those in `skip_real`, on `real_seeds` (default `seeds`); `samples` as `run_learned` takes it). `vec_env_factory()` -> make_vec_env; it, `make_policy` and `real_env` must be
    picklable (module-level functions or functools.partial)."""
    import ray

    if workers < 1:
        raise UserError(f"workers={workers}; give at least 1")
    real_seeds = seeds if real_seeds is None else real_seeds
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        actor = ray.remote(num_cpus=1)(EvalWorker)
        real_names = [n for n in policies if real_env is not None and n not in (skip_real or set())]
        n_learned = max(1, workers - 1) if real_names else workers
        actors = [actor.remote(make_policy, vec_env_factory, real_env) for _ in range(n_learned)]
        real_ref = actor.remote(make_policy, None, real_env).run_real_all.remote(real_names, real_seeds) if real_names else None
        chunks = [seeds[i : i + batch] for i in range(0, len(seeds), batch)]
        tasks = [(name, "learned", c) for name in policies for c in chunks] if vec_env_factory is not None else []
        pool = ray.util.ActorPool(actors)
        parts: dict = {}
        bar = tqdm(total=len(seeds) * len(policies) * bool(tasks) + len(real_seeds) * len(real_names), desc="episodes",
                   disable=not progress)
        for name, _, chunk, out in pool.map_unordered(lambda a, t: a.run.remote(*t, batch, samples), tasks):
            parts.setdefault(name, []).append((seeds.index(chunk[0]), out))
            bar.update(len(chunk))
        real = ray.get(real_ref) if real_ref is not None else {}
        bar.update(len(real_seeds) * len(real_names))
        bar.close()
    finally:
        if started:
            ray.shutdown()
    learned = {}
    for name, pieces in parts.items():
        pieces.sort(key=lambda p: p[0])  # back in seed order
        learned[name] = {k: np.concatenate([p[1][k] for p in pieces]) for k in pieces[0][1]}
    return learned, real
