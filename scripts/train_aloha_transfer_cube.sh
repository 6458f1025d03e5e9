#!/usr/bin/env bash
# The learned ALOHA transfer-cube simulator (`cosmos3_robot/AlohaTransferCube-v0`, shipped as
# checkpoints/aloha_transfer_cube), from scratch on this CPU: 36 expert-mix episodes (seeds 1000-1035) and 2 random
# ones (3000-3001) in gym-aloha's scene (~0.15 s a step with its top camera; resumable), then the joint servo,
# the grasp numbers, the Generator tower over both hands and the cube, and the keypoint renderer
# (tasks/aloha/train.py). The evaluation uses seeds 0-29; the ladder was graded on seeds 100-111.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
DATA=${DATA:-outputs/aloha_data}
OUT=${OUT:-outputs/aloha_transfer_cube}
.venv/bin/cosmos3-robot train-sim --task aloha_transfer_cube --dataset "$DATA" --out "$OUT" --seed "${SEED:-0}" \
  --collect 36 ${OVERWRITE:+--overwrite}
.venv/bin/cosmos3-robot export-onnx "$OUT"
# ship it: rm -rf src/cosmos3_robot/checkpoints/aloha_transfer_cube && cp -r "$OUT" src/cosmos3_robot/checkpoints/aloha_transfer_cube
