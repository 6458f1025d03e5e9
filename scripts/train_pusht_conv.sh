#!/usr/bin/env bash
# The conv-frame-head PushT world model of README "Why the learned simulator does not rank policies yet"
# (outputs/conv_pf_cal there; NOT a shipped checkpoint: the first step of pusht_small's chain, with scripts/train_pusht_state.sh and scripts/train_pusht_dynamics.sh): collect
# lossless data from the real gym-pusht with every graded policy, train the `small` world model on CPU in
# three stages, calibrate the judge's success threshold on held-out seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
DATA=${DATA:-outputs/pusht_clean}
RUN=${RUN:-outputs/pusht_conv}
scripts/collect_pusht.sh "$DATA"
# stage 1: tokenizer with extra weight on the pusher and block (1200 steps, ~4 min), then the world model in
# all modes with clean-latent (x0) residual frames, 5x loss on moving latents, time shift 3 (1000 steps,
# ~6 min). The shipped run stopped this stage at step 1000 of a 3000-step cosine schedule.
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN-1" --preset small \
  --tokenizer-steps 1200 --tokenizer-detail-weight 10 --steps "${STEPS1:-1000}" --judge-steps 0 \
  --residual-frames --frame-prediction x0 --motion-weight 4 --forward-share 0.6 --time-shift 3
# stage 2: the conv frame head (plus frame position embedding and the direct action path), 70% of the
# examples from pure frame noise, one sampler step, light context noise; judge also on imagined frames
# (2500 + 300 steps, ~17 min)
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN-2" --init "$RUN-1" --preset small \
  --frame-head conv --frame-pos-embed --action-to-frames --frame-t1-share 0.7 --sample-steps 1 \
  --forward-share 0.6 --motion-weight 4 --context-noise 0.1 --steps "${STEPS2:-2500}" --judge-steps 300 \
  --judge-imagined 0.5
# stage 3: pushforward: 50% of the windows get the model's own 3-step imagined context (2000 + 300 steps, ~22 min)
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN-3" --init "$RUN-2" --preset small \
  --frame-t1-share 0.7 --forward-share 0.6 --motion-weight 4 --context-noise 0.1 --rollout-steps 3 \
  --rollout-share 0.5 --lr 5e-4 --steps "${STEPS3:-2000}" --judge-steps 300 --judge-imagined 0.5
# success threshold from the model's own predictions of held-out episodes (seeds 7000-7005)
.venv/bin/python scripts/calibrate_judge.py "$RUN-3" --out "$RUN-cal"
