#!/usr/bin/env bash
# World-model training data: 20 lossless episodes of each graded PushT policy from the real gym-pusht,
# seeds 1000 + 100 x level (README: lerobot's default lossy encoding hides the dynamics). Resumable.
# Usage: scripts/collect_pusht.sh DATASET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
i=0
for p in expert expert-noise0.1 expert-lag2 expert-noise0.2 expert-slow expert-noise0.4 expert-noise0.8 random; do
  .venv/bin/cosmos3-robot collect --env pusht --policy "$p" --episodes 20 --seed $((1000 + 100 * i)) --out "$1" \
    --video-quality lossless --success-threshold 0.90
  i=$((i + 1))
done
