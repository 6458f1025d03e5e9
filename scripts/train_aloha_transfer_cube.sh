#!/usr/bin/env bash
# The learned ALOHA transfer-cube simulator (`cosmos3_robot/AlohaTransferCube-v0`, shipped as
# checkpoints/aloha_transfer_cube), from scratch on this CPU: 36 expert-mix episodes (seeds 1000-1035) and 2 random
# ones (3000-3001) in gym-aloha's scene (~0.15 s a step with its top camera; resumable), 400 state-only expert-mix
# episodes (seeds 5000-5399, ~0.15 s an episode), then the joint servo, the Generator tower over both hands and the
# cube and the keypoint renderer on the first, the grasp, slip and table numbers on the second
# (tasks/aloha/train.py). The evaluation uses seeds 0-29 and 200-259; choices were made on seeds 100-123.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
DATA=${DATA:-outputs/aloha_data}
OUT=${OUT:-outputs/aloha_transfer_cube}
.venv/bin/cosmos3-robot train-sim --task aloha_transfer_cube --dataset "$DATA" --out "$OUT" --seed "${SEED:-0}" \
  --collect 36 ${OVERWRITE:+--overwrite}
.venv/bin/cosmos3-robot export-onnx "$OUT"
# ship it: rm -rf src/cosmos3_robot/checkpoints/aloha_transfer_cube && cp -r "$OUT" src/cosmos3_robot/checkpoints/aloha_transfer_cube
