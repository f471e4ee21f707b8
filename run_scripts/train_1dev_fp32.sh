#!/usr/bin/env bash
# Train LPCNet on one device (CPU, or GPU with --num_gpus 1), FP32, seed schedule: 120 epochs x 1000 steps, batch 16.
# Usage: run_scripts/train_1dev_fp32.sh [extra `lpcnet train` flags...]   (paths and NP from env.sh)
set -euo pipefail
source "$(dirname "$0")/../env.sh"
exec python -m lpcnet.train --features "$DATA_DIR/features.f32" --data "$DATA_DIR/data.u8" \
  --output lpcnet_model --model_dir "$MODEL_DIR/1dev_fp32" --batch_size 16 --epochs 120 \
  --steps_per_epoch 1000 --use_amp False --use_horovod False --use_performance True \
  --enable_tensorboard True "$@"
