#!/usr/bin/env bash
# A ladder of LeRobot policies trained by lerobot's own `lerobot-train` on our PushT data (issue 36's learned-policy
# ladder; docs/trust.md): ACT and diffusion, state-based (the pusher's position and gym-pusht's 16 keypoints of the
# T, as lerobot/pusht_keypoints), at two training budgets and two data sizes, so they span weak to strong on this
# CPU. At run time the keypoints are read off the camera frame in both simulators
# (`register_observation_feature`), as they were read off the recorded frames for training.
#  1. expert demonstrations in real gym-pusht (as scripts/train_pusht_policy.sh collects them; seeds 3000-3449,
#     never an evaluation seed; resumable);
#  2. a derived dataset: the successful episodes with observation.environment_state, no video (`derive_features`);
#  3. one `lerobot-train` run per rung (skipped where its checkpoint exists). Nothing here is shipped.
# Then: cosmos3-robot eval --policies lerobot:$OUT/act_s1500/checkpoints/last/pretrained_model,... --real
# Usage: scripts/lerobot_ladder.sh   (OUT=..., RUNGS="act_s500 ..." to change them)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled
OUT=${OUT:-outputs/lerobot_ladder}
RUNGS=${RUNGS:-"act_s400 diffusion_s400 act_s1500 diffusion_s1500 act_s1500_ep50"}
mkdir -p "$OUT"
.venv/bin/cosmos3-robot collect --env pusht --policy expert --episodes 300 --seed 3000 --out outputs/pusht_expert \
  --video-quality lossless --success-threshold 0.90
.venv/bin/cosmos3-robot collect --env pusht --policy expert --episodes 150 --seed 3300 --out outputs/pusht_expert_b \
  --video-quality lossless --success-threshold 0.90
[ -d outputs/pusht_keypoints ] || .venv/bin/python -c "
import cosmos3_robot.tasks.pusht
from cosmos3_robot.datasets.derive import derive_features
print(derive_features(['outputs/pusht_expert', 'outputs/pusht_expert_b'], 'outputs/pusht_keypoints',
                      ['observation.environment_state'], successful_only=True))"
ACT="--policy.type=act --policy.dim_model=128 --policy.dim_feedforward=512 --policy.n_encoder_layers=2
  --policy.n_decoder_layers=1 --policy.chunk_size=16 --policy.n_action_steps=8 --policy.optimizer_lr=1e-4"
DIFFUSION="--policy.type=diffusion --policy.horizon=16 --policy.n_action_steps=8 --policy.drop_n_last_frames=7
  --policy.down_dims=[64,128,256] --policy.noise_scheduler_type=DDIM --policy.num_inference_steps=10
  --policy.scheduler_warmup_steps=100"
for rung in $RUNGS; do  # <type>_s<steps>[_ep<episodes>]
  [ -f "$OUT/$rung/checkpoints/last/pretrained_model/config.json" ] && { echo "$rung: done"; continue; }
  kind=${rung%%_*}; steps=$(echo "$rung" | sed -E 's/.*_s([0-9]+).*/\1/'); eps=""
  [[ $rung == *_ep* ]] && eps="--dataset.episodes=[$(seq -s, 0 $(( ${rung##*_ep} - 1 )))]"
  [ "$kind" = act ] && args=$ACT || args=$DIFFUSION
  rm -rf "$OUT/$rung"
  # shellcheck disable=SC2086
  .venv/bin/lerobot-train --dataset.repo_id=local/cosmos3 --dataset.root=outputs/pusht_keypoints $eps $args \
    --policy.push_to_hub=false --policy.device=cpu --seed=0 --batch_size=64 --steps="$steps" --save_freq="$steps" \
    --log_freq=100 --num_workers=1 --wandb.enable=false --output_dir="$OUT/$rung" > "$OUT/$rung.log" 2>&1
  echo "$rung: trained ($(grep -o 'step:[0-9]*[^ ]* .*loss:[0-9.]*' "$OUT/$rung.log" | tail -1))"
done
