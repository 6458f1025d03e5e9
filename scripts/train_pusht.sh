#!/usr/bin/env bash
# The first stage of the learned PushT simulator: collect data from the real gym-pusht with every graded
# policy, train the `small` world model on CPU, export a float16 copy into the package. That export was the
# shipped checkpoint; the shipped one now comes from scripts/train_pusht_conv.sh -> train_pusht_state.sh ->
# train_pusht_dynamics.sh, and running this script restores the previous one.
# Collection is lossless now (README: the lossy default hid the dynamics); that previous checkpoint was
# trained on data collected with lerobot's default encoding before that change.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
DATA=${DATA:-outputs/pusht_train}
RUN=${RUN:-outputs/pusht_small_run}
scripts/collect_pusht.sh "$DATA"
# stage 1: tokenizer (1000 steps) + world model and judge (2500) + judge head (200): ~29 min on 2 cores
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN" --preset small \
  --tokenizer-steps "${TOKENIZER_STEPS:-1000}" --steps "${STEPS:-2500}" --judge-steps "${JUDGE_STEPS:-200}"
# stage 2: continue as residual frame generation (change from the last frame), 3500 steps: ~24 min
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN-residual" --init "$RUN" --residual-frames \
  --preset small --steps "${STEPS2:-3500}" --judge-steps 200 --lr 1e-3
# stage 3: context-noise augmentation against closed-loop drift (context corrupted by noise up to 0.3;
# the env samples from noise scaled by 0.5), 2000 steps: ~10 min
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN-cn" --init "$RUN-residual" --preset small \
  --steps "${STEPS3:-2000}" --judge-steps 0 --lr 5e-4 --context-noise 0.3 --sample-noise 0.5
# stage 4: the judge head also learns from the model's own one-step predictions (half of its frames), ~3 min
.venv/bin/cosmos3-robot train --dataset "$DATA" --out "$RUN-judge" --init "$RUN-cn" --preset small \
  --steps 0 --judge-steps "${JUDGE4:-300}" --judge-imagined 0.5 --sample-noise 0.5
.venv/bin/python - "$RUN-judge" <<'PY'
import sys, torch
from cosmos3_robot.model import WorldModel
WorldModel.from_pretrained(sys.argv[1]).save_pretrained("src/cosmos3_robot/checkpoints/pusht_small", dtype=torch.float16)
PY
