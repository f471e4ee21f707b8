#!/usr/bin/env bash
# Carry the demo-model run in progress in the repository (models/training_demo_v2/): its newest
# checkpoint (replacing the previous one), its config, its quality rows and its loss curve, so
# that run_scripts/train_demo_model.sh continues it on another machine or in a later session.
# Usage: run_scripts/carry_demo_training.sh [RUN_DIR [E2E_RUN_DIR]]
#   RUN_DIR default $OUTPUT_DIR/demo_model_v2/run. E2E_RUN_DIR: the end-to-end run of the same size
#   and flags (docs/training.md, End-to-end variant): its config, quality rows and loss curve go to
#   models/training_demo_v2/end2end/ (no checkpoint: the comparison, not a model to continue).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/env.sh"
RUN="${1:-$OUTPUT_DIR/demo_model_v2/run}"
DEST="$ROOT/models/training_demo_v2"
newest=$(ls "$RUN"/demo2_256_*.keras | sort -t_ -k3 -n | tail -1)
mkdir -p "$DEST"
find "$DEST" -name 'demo2_256_*.keras' ! -name "$(basename "$newest")" -delete
cp "$newest" "$RUN/demo2_256_config.json" "$DEST/"
[ -f "$RUN/eval/quality.jsonl" ] && cp "$RUN/eval/quality.jsonl" "$DEST/"
python -m lpcnet.train_eval loss-curve "$RUN/tensorboard" "$DEST/loss.csv"
echo "carried $(basename "$newest") -> $DEST"
if [ -n "${2:-}" ]; then
  mkdir -p "$DEST/end2end"
  cp "$2"/*_config.json "$2/eval/quality.jsonl" "$DEST/end2end/"
  python -m lpcnet.train_eval loss-curve "$2/tensorboard" "$DEST/end2end/loss.csv"
  echo "carried the end-to-end run's curves -> $DEST/end2end"
fi
