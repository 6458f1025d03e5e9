#!/usr/bin/env bash
# The LeRobot baseline beside the policy head: LeRobot's diffusion policy, trained by lerobot's own
# `lerobot-train` on the same expert episodes (scripts/train_pusht_policy.sh collects them) within the same
# wall-clock budget on this CPU (BUDGET seconds, default 600; the last checkpoint saved inside it is the result).
# CPU-sized: a ResNet-18 trained from scratch (no weights download), a small U-Net (64/128/256), horizon 16,
# 8 actions per chunk, DDIM with 10 denoising steps at run time.
# Usage: scripts/train_pusht_diffusion_baseline.sh   (DATA=..., OUT=..., BUDGET=... to change them)
# Then: cosmos3-robot eval --policies lerobot:$OUT/checkpoints/last/pretrained_model --episodes 50 --real
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled
DATA=${DATA:-outputs/pusht_expert}
OUT=${OUT:-outputs/pusht_diffusion}
BUDGET=${BUDGET:-600}
rm -rf "$OUT"
timeout --signal=INT "$BUDGET" .venv/bin/lerobot-train --dataset.repo_id=local/cosmos3 --dataset.root="$DATA" \
  --policy.type=diffusion --policy.pretrained_backbone_weights=null --policy.use_group_norm=true \
  --policy.crop_shape=[84,84] --policy.horizon=16 --policy.n_action_steps=8 --policy.drop_n_last_frames=7 \
  --policy.down_dims=[64,128,256] --policy.noise_scheduler_type=DDIM --policy.num_inference_steps=10 \
  --policy.push_to_hub=false --policy.device=cpu --batch_size=32 --steps=100000 --save_freq=100 \
  --log_freq=50 --num_workers=0 --wandb.enable=false --output_dir="$OUT"
ls -d "$OUT"/checkpoints/last/pretrained_model && echo "diffusion baseline in $OUT/checkpoints/last/pretrained_model"
