"""Where a policy that locates objects by colour reads the cube and the target in the learned Franka scene's
frames: for each initial state, the object found in the real scene's first frame and in the frame the learned
scene draws of the same world state, against the perceived world state (m on the table). A policy that looks
again after its first frame (the wait family, any closed-loop policy) sees only drawn frames.

    python scripts/franka_render_check.py [--checkpoint franka_cube] [--seeds 6000-6015]
"""

from __future__ import annotations

import argparse

import numpy as np

from cosmos3_robot.cli import learned_env
from cosmos3_robot.tasks.franka_cube.perception import CAMERA, GREEN, RED, find_on_table
from cosmos3_robot.tasks.franka_cube.real import CUBE_HALF
from cosmos3_robot.tasks.franka_cube.structured import CUBE, TARGET


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--seeds", default="6000-6015")
    a = p.parse_args(argv)
    lo, hi = map(int, a.seeds.split("-"))
    env = learned_env("franka_cube", a.checkpoint)
    task = env.backend.task
    calib = task.calibs[CAMERA]
    err = {(src, obj): [] for src in ("real frame", "drawn frame") for obj in ("cube", "target")}
    for seed in range(lo, hi + 1):
        obs, _ = env.reset(seed=seed)
        world = np.asarray(env._session.data["world"][0, -1])  # the perceived world state the scene starts from
        frames = {"real frame": np.asarray(obs[f"observation.images.{CAMERA}"]),
                  "drawn frame": np.asarray(task.render(world[None])[CAMERA][0])}
        for src, image in frames.items():
            for obj, ranges, z, truth in (("cube", RED, CUBE_HALF, world[CUBE][:2]), ("target", GREEN, 0.0, world[TARGET])):
                found = find_on_table(image, calib, ranges, z)
                err[src, obj].append(np.inf if found is None else float(np.linalg.norm(found[0] - truth)))
    print(f"seeds {lo}-{hi}, {a.checkpoint or 'the shipped checkpoint'}: where the object is read, from the world "
          "state (cm)")
    print("| frame | object | mean | max | not found |")
    print("|---|---|---|---|---|")
    for (src, obj), e in err.items():
        e = np.asarray(e)
        ok = e[np.isfinite(e)]
        print(f"| {src} | {obj} | {100 * ok.mean():.2f} | {100 * ok.max():.2f} | {int((~np.isfinite(e)).sum())} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
