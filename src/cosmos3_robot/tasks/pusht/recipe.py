"""`cosmos3-robot train-sim --task pusht`: the shipped learned PushT simulator's recipe, from collection to the
ONNX graph (scripts/train_pusht_tower.sh calls it)."""

from __future__ import annotations

from pathlib import Path

from ...cli import run_step as cli
from ...errors import UserError
from ...model.checkpoint import refuse_overwrite
from .renderer_train import main as fit_renderer


# The shipped recipe's training data: 20 lossless episodes of each of these from real gym-pusht, policy i from
# seed 1000 + 100 i (scripts/collect_pusht.sh).
RECIPE_POLICIES = ("expert", "expert-noise0.1", "expert-lag2", "expert-noise0.2", "expert-slow", "expert-noise0.4",
                   "expert-noise0.8", "random")


def train_sim(dataset, out, seed: int = 0, collect: int = 0, overwrite: bool = False):
    """`cosmos3-robot train-sim --task pusht`: the shipped pusht_tower's recipe (scripts/train_pusht_tower.sh).
    With `collect`, first that many lossless episodes of each of `RECIPE_POLICIES` into `dataset` (the shipped
    one: 20; finished ones are kept); then the sprite renderer fit to the dataset's frames and 6,000 random
    states (once per dataset, renderer seed 0, kept beside it as `<dataset>_renderer`), the Generator tower on the
    perceived transitions (width 96, 60 epochs, `seed`), and its ONNX graph."""
    dataset, out = Path(dataset), Path(out)
    refuse_overwrite(out, overwrite)
    if not collect and not dataset.is_dir():
        raise UserError(f"--dataset {str(dataset)!r} does not exist; collect the recipe's data into it with --collect 20")
    if collect:
        for i, policy in enumerate(RECIPE_POLICIES):
            cli(["collect", "--env", "pusht", "--policy", policy, "--episodes", str(collect), "--seed",
                 str(1000 + 100 * i), "--out", str(dataset), "--video-quality", "lossless", "--success-threshold", "0.90"])
    renderer = dataset.with_name(dataset.name + "_renderer")
    if not (renderer / "config.json").exists():
        fit_renderer(["--teacher", "real", "--dataset", str(dataset), "--out", str(renderer), "--kind", "sprite",
                      "--steps", "4000", "--seed", "0", "--log", f"{renderer}-losses.jsonl", "--legacy-loss"])
    cli(["train-dynamics", "--init", str(renderer), "--dataset", str(dataset), "--out", str(out), "--dynamics", "tower",
         "--width", "96", "--epochs", "60", "--seed", str(seed), "--overwrite"])
    cli(["export-onnx", str(out)])
