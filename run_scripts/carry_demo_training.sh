#!/usr/bin/env bash
# Carry the demo-model run in progress in the repository (models/demo/training/): its newest
# checkpoint (replacing the previous one), its config, its quality rows and its loss curve, so
# that run_scripts/train_demo_model.sh continues it on another machine or in a later session.
# Usage: run_scripts/carry_demo_training.sh [RUN_DIR]   (default $OUTPUT_DIR/demo_model_v2/run)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/env.sh"
RUN="${1:-$OUTPUT_DIR/demo_model_v2/run}"
DEST="$ROOT/models/demo/training"
newest=$(ls "$RUN"/demo2_256_*.keras | sort -t_ -k3 -n | tail -1)
mkdir -p "$DEST"
find "$DEST" -name 'demo2_256_*.keras' ! -name "$(basename "$newest")" -delete
cp "$newest" "$RUN/demo2_256_config.json" "$DEST/"
[ -f "$RUN/eval/quality.jsonl" ] && cp "$RUN/eval/quality.jsonl" "$DEST/"
python -m lpcnet.train_eval loss-curve "$RUN/tensorboard" "$DEST/loss.csv"
echo "carried $(basename "$newest") -> $DEST"
