#!/usr/bin/env bash
# The policy head of the shipped learned PushT simulator (the Generator tower in policy mode), on this
# CPU:
#  1. expert demonstrations: 526 lossless episodes of the scripted expert in real gym-pusht, seeds
#     3000-3525 (never an evaluation or choosing seed; resumable; the shipped head used two shards of 263 run
#     side by side, ~8 min);
#  2. `cosmos3-robot train-policy`: the head on the successful ones, each state perceived from its frame as
#     the learned env perceives it; chunks of 16 actions, rectified flow, 4 Euler steps by default; at run
#     time the agent samples 8 chunks per call and keeps the one the checkpoint's own dynamics imagines best
#     (--candidates 8: held-out seeds 300000-300029 gave 0.50 / 0.50 / 0.77 / 0.73 real with 1 / 4 / 8 / 16).
# The checkpoint keeps INIT's dynamics and renderer, so one model both acts and imagines; shipped as
# pusht_policy (pusht_tower stays without the head: the learned env loads only what it runs). INIT defaults to
# the shipped pusht_policy, whose dynamics are trained apart from the judge pusht_tower's (the planner must not
# imagine with the judge's model); its head is fine-tuned for 50 epochs. The shipped head was fine-tuned from the
# one before it (docs/eval_policy_head.md, issue 40); to rebuild it, start from that one:
#   mkdir -p outputs/prev && git archive cf46e29 src/cosmos3_robot/checkpoints/pusht_policy | tar -x -C outputs/prev
#   INIT=outputs/prev/src/cosmos3_robot/checkpoints/pusht_policy scripts/train_pusht_policy.sh
# (it read the episodes as two datasets of 263, so one dataset of 526 trains on the same states in another order).
# Usage: scripts/train_pusht_policy.sh [SEED]   (INIT=..., DATA=..., OUT=..., EPOCHS=... to change them)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SEED=${1:-0}
INIT=${INIT:-pusht_policy}
DATA=${DATA:-outputs/pusht_expert}
OUT=${OUT:-outputs/pusht_policy_s$SEED}
EPOCHS=${EPOCHS:-50}
.venv/bin/cosmos3-robot collect --env pusht --policy expert --episodes 526 --seed 3000 --out "$DATA" \
  --video-quality lossless --success-threshold 0.90
.venv/bin/cosmos3-robot train-policy --init "$INIT" --dataset "$DATA" --out "$OUT" --policies expert \
  --chunk 16 --candidates 8 --epochs "$EPOCHS" --seed "$SEED" --overwrite
echo "policy head in $OUT: cosmos3-robot eval --policies world-model:$OUT --episodes 50 --real" \
  "(ship it: cp -r $OUT src/cosmos3_robot/checkpoints/pusht_policy)"
