#!/usr/bin/env bash
# Elastic Horovod training (gloo): MIN..MAX workers that may leave and join; the global batch stays
# 16 x MAX. Hosts come from run_scripts/discover_hosts.sh: the file LPCNET_HOSTS_FILE (edit it while
# the run goes), else HOSTS, else localhost:MAX. docs/distributed.md, Elastic training.
# Usage: run_scripts/train_hvd_elastic.sh fp32|amp MIN MAX [extra `lpcnet train` flags...]
set -euo pipefail
source "$(dirname "$0")/../env.sh"
PREC=${1:-}; MIN=${2:-}; MAX=${3:-}
case "$PREC" in fp32) AMP=False ;; amp) AMP=True ;; *) PREC= ;; esac
if [ -z "$PREC" ] || ! [[ "$MIN" =~ ^[0-9]+$ && "$MAX" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 fp32|amp MIN MAX [lpcnet train flags...]" >&2; exit 2
fi
shift 3
LAUNCH=(-np "$MAX" --elastic --min-np "$MIN" --max-np "$MAX"
        ${LPCNET_THREADS_PER_RANK:+--threads "$LPCNET_THREADS_PER_RANK"}
        ${LPCNET_HOSTS_FILE:+--hosts-file "$LPCNET_HOSTS_FILE"})
exec python -m lpcnet.launcher "${LAUNCH[@]}" -- \
  --features "$DATA_DIR/features.f32" --data "$DATA_DIR/data.u8" \
  --output lpcnet_model --model_dir "$MODEL_DIR/elastic${MAX}_${PREC}" --batch_size 16 --epochs 120 \
  --steps_per_epoch 1000 --use_amp "$AMP" --use_performance True --enable_tensorboard True \
  --commit-every 20 "$@"
