#!/usr/bin/env bash
# Train LPCNet data-parallel with Horovod (gloo) on NP processes in FP32 or mixed precision; batch 16 per process.
# Usage: run_scripts/train_hvd.sh fp32|amp [NP] [extra `lpcnet train` flags...]   (paths and NP from env.sh)
set -euo pipefail
source "$(dirname "$0")/../env.sh"
PREC=${1:-}; shift $(( $# > 0 ? 1 : 0 ))
case "$PREC" in fp32) AMP=False ;; amp) AMP=True ;;
  *) echo "usage: $0 fp32|amp [NP] [lpcnet train flags...]" >&2; exit 2 ;; esac
NP=${1:-$NP}; shift $(( $# > 0 ? 1 : 0 ))
# Threads per rank so NP ranks do not oversubscribe this host (override: LPCNET_THREADS_PER_RANK).
THREADS=${LPCNET_THREADS_PER_RANK:-$(( $(nproc) / NP ))}; [ "$THREADS" -ge 1 ] || THREADS=1
export TF_NUM_INTRAOP_THREADS=$THREADS OMP_NUM_THREADS=$THREADS TF_NUM_INTEROP_THREADS=1
HOSTARGS=(-H "${HOSTS:-localhost:$NP}"); [ -n "$HOSTFILE" ] && HOSTARGS=(--hostfile "$HOSTFILE")
exec horovodrun -np "$NP" "${HOSTARGS[@]}" --gloo \
  python -m lpcnet.train --features "$DATA_DIR/features.f32" --data "$DATA_DIR/data.u8" \
  --output lpcnet_model --model_dir "$MODEL_DIR/hvd${NP}_${PREC}" --batch_size 16 --epochs 120 \
  --steps_per_epoch 1000 --use_amp "$AMP" --use_horovod True --use_performance True \
  --enable_tensorboard True "$@"
