#!/usr/bin/env bash
# The perceived-state PushT world model of README "Why the learned simulator does not rank policies yet"
# (outputs/ps4 there; NOT the shipped checkpoint). Continues scripts/train_pusht_conv.sh's stage-3 model:
# the T's pose, read off each frame by the OpenCV estimator, rides in the state token, and the conv frame
# head draws each frame from the predicted pusher position and T pose. About 60 CPU minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
DATA=${DATA:-outputs/pusht_clean}
RUN=${RUN:-outputs/pusht_conv}
COMMON=(--dataset "$DATA" --preset small --frame-t1-share 0.7 --forward-share 0.6 --motion-weight 4 --context-noise 0.1
        --judge-imagined 0.5)
# pushforward over 8 steps on 60% of the windows (1000 + 200 steps, ~20 min)
.venv/bin/cosmos3-robot train "${COMMON[@]}" --out "$RUN-pf8" --init "$RUN-3" --rollout-steps 8 --rollout-share 0.6 \
  --lr 5e-4 --steps 1000 --judge-steps 200
# perceived T pose in the state, residual state, absolute frames drawn from (pusher point, T pose) planes; the new
# head is first pretrained alone as a renderer (1500 steps), then everything trains (2000 + 300 steps, ~16 min)
.venv/bin/cosmos3-robot train "${COMMON[@]}" --out "$RUN-ps2" --init "$RUN-pf8" --perceive-state pusht_block_pose \
  --conv-head-state 6 --state-geometry point:0,pose:2 --residual-state --no-residual-frames --render-steps 1500 \
  --steps 2000 --judge-steps 300
# the frame head always reads the true (noised) next state while training (1000 render + 2000 + 300 steps, ~17 min)
.venv/bin/cosmos3-robot train "${COMMON[@]}" --out "$RUN-ps3" --init "$RUN-ps2" --render-steps 1000 --hint-teacher 1.0 \
  --steps 2000 --judge-steps 300
# longer renderer pretraining, then 3-step pushforward for the state dynamics (6000 render + 1500 + 300 steps, ~22 min)
.venv/bin/cosmos3-robot train "${COMMON[@]}" --out "$RUN-ps4" --init "$RUN-ps3" --render-steps 6000 --hint-teacher 1.0 \
  --rollout-steps 3 --rollout-share 0.5 --lr 5e-4 --steps 1500 --judge-steps 300
