#!/usr/bin/env bash
# Train LPCNet data-parallel with Horovod (gloo) on NP processes in FP32 or mixed precision; batch 16 per process.
# Usage: run_scripts/train_hvd.sh fp32|amp [NP] [extra `lpcnet train` flags...]   (paths and NP from env.sh)
# Started through the kit's launcher (lpcnet launch = python -m lpcnet.launcher): per-rank threads and cores, rank 0's output
# live, and when a rank fails its own error comes first (docs/distributed.md).
set -euo pipefail
source "$(dirname "$0")/../env.sh"
PREC=${1:-}; shift $(( $# > 0 ? 1 : 0 ))
case "$PREC" in fp32) AMP=False ;; amp) AMP=True ;;
  *) echo "usage: $0 fp32|amp [NP] [lpcnet train flags...]" >&2; exit 2 ;; esac
# NP is optional: a first argument that is a number, else env.sh's NP.
if [[ ${1:-} =~ ^[0-9]+$ ]]; then NP=$1; shift; fi
# Threads per rank: LPCNET_THREADS_PER_RANK, else the launcher's (this host's cores // NP).
LAUNCH=(-np "$NP" ${LPCNET_THREADS_PER_RANK:+--threads "$LPCNET_THREADS_PER_RANK"})
if [ -n "$HOSTFILE" ]; then LAUNCH+=(--hostfile "$HOSTFILE"); elif [ -n "$HOSTS" ]; then LAUNCH+=(--hosts "$HOSTS"); fi
exec python -m lpcnet.launcher "${LAUNCH[@]}" -- \
  --features "$DATA_DIR/features.f32" --data "$DATA_DIR/data.u8" \
  --output lpcnet_model --model_dir "$MODEL_DIR/hvd${NP}_${PREC}" --batch_size 16 --epochs 120 \
  --steps_per_epoch 1000 --use_amp "$AMP" --use_performance True --enable_tensorboard True "$@"
