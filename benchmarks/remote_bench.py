"""Learned-env speed in-process against the same checkpoint served by `cosmos3-robot serve` (vLLM-Omni's video
API over HTTP, lossless MP4 frames), in one run: env steps/s at 1 and 16 envs, stateful (a server-side session)
and stateless (every request carries the last frame, as a plain vLLM-Omni needs), and with 2 env-worker
processes (8 and 16 envs each) sharing the one server. Two or more started sessions of a vector env travel in one
request (the server's /v1/sessions/step); a single env's requests are vLLM-Omni's own.
Usage: .venv/bin/python benchmarks/remote_bench.py [--checkpoint pusht_tower] [--steps 20]"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

START = "cosmos3_robot/PushTReal-v0"


def rate(backend_factory, n: int, steps: int) -> float:
    from cosmos3_robot.sim import LearnedEnv, LearnedVectorEnv

    backend = backend_factory()
    env = LearnedEnv(backend, START, success_threshold=1.01) if n == 1 else \
        LearnedVectorEnv(n, backend, START, success_threshold=1.01)
    rng = np.random.default_rng(0)
    shape = (n, 2) if n > 1 else (2,)
    env.reset(seed=0)
    env.step(rng.uniform(0, 512, shape))
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(0, 512, shape))
    return n * steps / (time.perf_counter() - t0)


def worker(url: str, n: int, steps: int, out) -> None:
    from cosmos3_robot.backends.remote import RemoteBackend

    out.put(rate(lambda: RemoteBackend(url), n, steps))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="pusht_tower")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--serve-args", default="", help="extra `serve` options, e.g. '--threads 1'")
    args = parser.parse_args()
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.backends.remote import RemoteBackend

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "cosmos3_robot.cli", "serve", "--checkpoint", args.checkpoint,
                               "--port", str(port), *args.serve_args.split()],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                httpx.get(url + "/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        rows = []
        for n in (1, 16):
            rows.append(("in-process", n, rate(lambda: load_backend(args.checkpoint), n, args.steps)))
            rows.append(("remote, stateful (server-side session)", n, rate(lambda: RemoteBackend(url), n, args.steps)))
            rows.append(("remote, stateless (as against vLLM-Omni: last frame as PNG, chunk padded to 4)", n,
                         rate(lambda: RemoteBackend(url, stateless=True), n, args.steps)))
        rows.append(("in-process", 32, rate(lambda: load_backend(args.checkpoint), 32, args.steps)))
        stats = httpx.get(url + "/v1/models").json()["data"][0]["cosmos3_robot"]["batching"]
        seen = stats["rows"], stats["calls"]
        for per in (8, 16):  # one server, 2 client processes (the server joins their sessions in one model call)
            q = mp.get_context("spawn").Queue()
            procs = [mp.get_context("spawn").Process(target=worker, args=(url, per, args.steps, q)) for _ in range(2)]
            for p in procs:
                p.start()
            total = sum(q.get() for _ in procs)
            for p in procs:
                p.join()
            stats = httpx.get(url + "/v1/models").json()["data"][0]["cosmos3_robot"]["batching"]
            rows.append((f"remote, stateful, 2 client processes x {per} envs (server: {stats['rows'] - seen[0]} "
                         f"rows in {stats['calls'] - seen[1]} model calls)", 2 * per, total))
            seen = stats["rows"], stats["calls"]
    finally:
        server.terminate()
    print("| simulator | envs | env steps/s |\n|---|---|---|")
    for name, n, sps in rows:
        print(f"| {name} | {n} | {sps:.1f} |")


if __name__ == "__main__":
    main()
