#!/usr/bin/env bash
# The shipped learned PushT simulator (pusht_tower), from scratch on this CPU: `cosmos3-robot train-sim --task
# pusht` (tasks/pusht/recipe.py train_sim) runs the recipe:
#  1. training data: 20 lossless episodes of each of the 8 ladder policies from real gym-pusht
#     (seeds 1000-1719; resumable; scripts/collect_pusht.sh collects the same);
#  2. the renderer (a learned background and one learned sprite per entity, composited by the state), fit
#     to the real frames of those episodes plus 6,000 frames of random states, each frame's world state
#     perceived from the frame (tasks/pusht/renderer_train.py, about 3 min; once per dataset, in DATA_renderer);
#  3. the Generator tower over entity tokens (pusher, T, action), trained with the rectified-flow
#     objective on the perceived transitions (cosmos3-robot train-dynamics), plus two kinds of exact ones:
#     a pusher at rest on its target moves nothing (every 10th state) and a pusher sent to a target a few
#     units away settles on it, run in gym-pusht's physics (every 20th state).
# Usage: scripts/train_pusht_tower.sh [SEED]   (OUT=..., DATA=... to change the paths)
# SEED seeds the dynamics; the renderer has seed 0 and is trained once per dataset.
# The evaluated seeds of the recipe are 0, 1 and 2 (docs/eval_pusht_tower.md); seed 0 ships.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SEED=${1:-0}
DATA=${DATA:-outputs/pusht_clean}
OUT=${OUT:-outputs/pusht_tower_s$SEED}
.venv/bin/cosmos3-robot train-sim --task pusht --dataset "$DATA" --out "$OUT" --collect 20 --seed "$SEED" --overwrite
echo "learned PushT simulator in $OUT (ship it: cp -r $OUT src/cosmos3_robot/checkpoints/pusht_tower)"
