#!/usr/bin/env bash
# World-model training data: 20 lossless episodes of each graded PushT policy from the real gym-pusht,
# seeds 1000 + 100 x level (README: lerobot's default lossy encoding hides the dynamics). Resumable.
# The policies are the recipe's (tasks/pusht/recipe.py RECIPE_POLICIES; `train-sim --task pusht --collect 20`
# collects the same).
# Usage: scripts/collect_pusht.sh DATASET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
i=0
for p in $(.venv/bin/python -c "from cosmos3_robot.tasks.pusht.recipe import RECIPE_POLICIES; print(*RECIPE_POLICIES)"); do
  .venv/bin/cosmos3-robot collect --env pusht --policy "$p" --episodes 20 --seed $((1000 + 100 * i)) --out "$1" \
    --video-quality lossless --success-threshold 0.90
  i=$((i + 1))
done
