#!/usr/bin/env bash
# Train LPCNet on one device, mixed precision (bfloat16 on CPU, float16 on GPU), seed schedule.
# Usage: run_scripts/train_1dev_amp.sh [extra `lpcnet train` flags...]   (paths and NP from env.sh)
set -euo pipefail
source "$(dirname "$0")/../env.sh"
exec python -m lpcnet.train --features "$DATA_DIR/features.f32" --data "$DATA_DIR/data.u8" \
  --output lpcnet_model --model_dir "$MODEL_DIR/1dev_amp" --batch_size 16 --epochs 120 \
  --steps_per_epoch 1000 --use_amp True --use_horovod False --use_performance True \
  --enable_tensorboard True "$@"
