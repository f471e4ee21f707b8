#!/usr/bin/env bash
# CI smoke run of the Horovod launcher: NP processes, 1 epoch x 10 steps, tiny model.
# Usage: run_scripts/train_hvd_ci_smoke.sh [NP] [extra `lpcnet train` flags...]   (paths and NP from env.sh)
set -euo pipefail
source "$(dirname "$0")/../env.sh"
# NP is optional: a first argument that is a number, else env.sh's NP.
if [[ ${1:-} =~ ^[0-9]+$ ]]; then NP=$1; shift; fi
exec python -m lpcnet.launcher -np "$NP" ${LPCNET_THREADS_PER_RANK:+--threads "$LPCNET_THREADS_PER_RANK"} -- \
  --features "$DATA_DIR/features.f32" --data "$DATA_DIR/data.u8" \
  --output lpcnet_smoke --model_dir "$MODEL_DIR/smoke${NP}" --batch_size 2 --epochs 1 \
  --steps_per_epoch 10 --grua-size 16 --grub-size 8 --use_amp False --use_performance True "$@"
