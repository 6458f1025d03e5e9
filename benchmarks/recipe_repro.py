"""Is the PushT tower recipe reproducible? Run it twice from fresh directories on this machine and compare each
intermediate artifact: the collected data, the renderer, the tower's training transitions, its first and last
losses, and its weights.

    python benchmarks/recipe_repro.py            # scripts/train_pusht_tower.sh twice (about 2 x 22 min)
    python benchmarks/recipe_repro.py --quick    # the same steps on 4 episodes, a 200-step renderer, 20 epochs

Prints a table: artifact, run A, run B, identical. docs/eval_pusht_tower.md ("What a rebuild reproduces") has
the results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = [PY, "-m", "cosmos3_robot.cli"]


def run(cmd: list[str], env: dict | None = None) -> None:
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                   stdout=subprocess.DEVNULL)


def recipe(work: Path, quick: bool, seed: int) -> dict[str, Path]:
    data, renderer, tower = work / "data", work / "renderer", work / "tower"
    if not quick:
        run(["scripts/train_pusht_tower.sh", str(seed)], {"DATA": str(data), "RENDERER": str(renderer), "OUT": str(tower)})
        return {"data": data, "renderer": renderer, "tower": tower}
    run([*CLI, "collect", "--env", "pusht", "--policy", "expert-noise0.2", "--episodes", "4", "--seed", "1000",
         "--out", str(data), "--video-quality", "lossless", "--success-threshold", "0.90"])
    run([PY, "scripts/train_pusht_renderer.py", "--teacher", "real", "--dataset", str(data), "--out", str(renderer),
         "--kind", "sprite", "--steps", "200", "--random-frames", "200", "--frames", "600", "--seed", "0",
         "--log", str(work / "renderer-losses.jsonl"), "--legacy-loss"])
    run([*CLI, "train-dynamics", "--init", str(renderer), "--dataset", str(data), "--out", str(tower),
         "--dynamics", "tower", "--width", "96", "--epochs", "20", "--seed", str(seed), "--overwrite"])
    return {"data": data, "renderer": renderer, "tower": tower}


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def artifacts(paths: dict[str, Path]) -> dict[str, str]:
    """artifact -> a short hash or value."""
    out = {}
    data = paths["data"]
    parquet = sorted((data / "data").rglob("*.parquet"))
    videos = sorted((data / "videos").rglob("*.mp4"))
    out["collected data (parquet)"] = hashlib.sha1(b"".join(p.read_bytes() for p in parquet)).hexdigest()[:12]
    out["collected videos (mp4)"] = hashlib.sha1(b"".join(p.read_bytes() for p in videos)).hexdigest()[:12]
    out["renderer weights"] = sha1(paths["renderer"] / "model.safetensors")
    prov = json.loads((paths["tower"] / "config.json").read_text())["provenance"]["tower"]
    out["tower transitions"] = prov.get("transitions_sha1", "?")[:12]
    losses = [json.loads(ln) for ln in (paths["tower"] / "losses.jsonl").read_text().splitlines() if ln.strip()]
    losses = [r for r in losses if r.get("stage") == "entity_tower" and "loss" in r]
    out["tower first-step loss"] = f"{losses[0]['loss']:.9g}"
    out["tower last-step loss"] = f"{losses[-1]['loss']:.9g}"
    out["tower weights"] = sha1(paths["tower"] / "model.safetensors")
    out["machine"] = json.dumps(prov.get("machine", {}))
    return out


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="recipe_repro_") as tmp:
        runs = [recipe(Path(tmp) / name, args.quick, args.seed) for name in ("a", "b")]
        a, b = (artifacts(r) for r in runs)
        print("| artifact | run A | run B | identical |\n|---|---|---|---|")
        for k in a:
            print(f"| {k} | {a[k]} | {b[k]} | {'yes' if a[k] == b[k] else 'no'} |")
        print(f"| tower max weight difference | | | {max_weight_diff(runs[0]['tower'], runs[1]['tower']):.3g} |")


if __name__ == "__main__":
    main()
