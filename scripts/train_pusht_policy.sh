#!/usr/bin/env bash
# The policy head of the shipped learned PushT simulator (the Generator tower in policy mode), from scratch
# on this CPU:
#  1. expert demonstrations: 200 lossless episodes of the scripted expert in real gym-pusht, seeds
#     3000-3199 (never the evaluation seeds 0-99 or the held-out ones 200000+; resumable);
#  2. `cosmos3-robot train-policy`: the head on the successful ones, each state perceived from its frame as
#     the learned env perceives it; chunks of 16 actions, rectified flow, 4 Euler steps by default; at run
#     time the agent samples 8 chunks per call and keeps the one the checkpoint's own dynamics imagines best
#     (--candidates 8: held-out seeds 300000-300029 gave 0.50 / 0.50 / 0.77 / 0.73 real with 1 / 4 / 8 / 16).
# The checkpoint keeps INIT's dynamics and renderer, so one model both acts and imagines; shipped as
# pusht_policy (pusht_tower stays without the head: the learned env loads only what it runs).
# Usage: scripts/train_pusht_policy.sh [SEED]   (INIT=..., DATA=..., OUT=..., EPOCHS=... to change them)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
SEED=${1:-0}
INIT=${INIT:-pusht_tower}
DATA=${DATA:-outputs/pusht_expert}
OUT=${OUT:-outputs/pusht_policy_s$SEED}
EPOCHS=${EPOCHS:-100}
.venv/bin/cosmos3-robot collect --env pusht --policy expert --episodes 200 --seed 3000 --out "$DATA" \
  --video-quality lossless --success-threshold 0.90
.venv/bin/cosmos3-robot train-policy --init "$INIT" --dataset "$DATA" --out "$OUT" --policies expert \
  --chunk 16 --candidates 8 --epochs "$EPOCHS" --seed "$SEED" --overwrite
echo "policy head in $OUT: cosmos3-robot eval --policies world-model:$OUT --episodes 50 --real" \
  "(ship it: cp -r $OUT src/cosmos3_robot/checkpoints/pusht_policy)"
