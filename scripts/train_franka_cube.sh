#!/usr/bin/env bash
# The learned Franka cube simulator (`cosmos3_robot/FrankaCube-v0`, shipped as checkpoints/franka_cube), from
# scratch on this CPU:
#  1. data: `collect --env franka_cube` in the real MuJoCo scene, lossless video, 200 steps max: 12 episodes of
#     the expert (seeds 2000-2011), 48 of expert-mix (degradations drawn per episode, seeds 1000-1047), 4 of
#     random (seeds 3000-3003), 24 of expert-varied (the mix plus rests and turned grasps, seeds 4000-4023). The
#     evaluation uses seeds 0-29; the ladder was graded on seeds 5000-5009; choices were made on 6000-6015 and
#     6100-6107. About 20 min on one core (three 180x320 cameras, ~23 ms per MuJoCo frame without shadows).
#  2. training (tasks/franka_cube/train.py, ~20 min): every frame's world state perceived (robot state + cube
#     and target from the exterior cameras; 5 min), the grasp numbers, the joint servo (3000 steps), the
#     Generator tower over hand and cube (100 epochs) and the keypoint renderer (3000 steps at batch 32, then
#     1500 with the cube and target weighted 60x); then the tower's ONNX graph. docs/eval_franka.md says why.
# The shipped checkpoint was built in steps from the one before it (same data and seeds as above; the
# renderer had one more weighted pass, at 30x on the first 30 episodes):
#   python -m cosmos3_robot.tasks.franka_cube.train --refine-renderer franka_cube --dataset D --out R1 (--refine-steps 1500, weight 30)
#   python -m cosmos3_robot.tasks.franka_cube.train --refine-renderer R1 --dataset D --out R2
#   python -m cosmos3_robot.tasks.franka_cube.train --init R2 --dataset D,D_varied --out V4 --refine-steps 0
#   python -m cosmos3_robot.tasks.franka_cube.train --remeasure V4 --dataset D,D_varied --out V7
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
DATA=${DATA:-outputs/franka_data}
OUT=${OUT:-outputs/franka_cube}
SEED=${SEED:-0}
# collect (skips episodes already in $DATA), fit, export the tower's ONNX graph: tasks/franka_cube/train.py train_sim
.venv/bin/cosmos3-robot train-sim --task franka_cube --dataset "$DATA" --out "$OUT" --seed "$SEED" --collect 48 \
  ${OVERWRITE:+--overwrite}
# ship it: rm -rf src/cosmos3_robot/checkpoints/franka_cube && cp -r "$OUT" src/cosmos3_robot/checkpoints/franka_cube
