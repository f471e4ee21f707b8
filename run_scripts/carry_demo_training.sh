#!/usr/bin/env bash
# Carry the demo-model run in progress in the repository (models/training_demo_v2/): its newest
# checkpoint (replacing the previous one), its config, its quality rows and its loss curve, so
# that run_scripts/train_demo_model.sh continues it on another machine or in a later session.
# Usage: run_scripts/carry_demo_training.sh [RUN_DIR [E2E_RUN_DIR]]
#   RUN_DIR default $OUTPUT_DIR/demo_model_v2/run. E2E_RUN_DIR: the end-to-end run of the same size
#   and flags (docs/training.md, End-to-end variant): its config, quality rows and loss curve go to
#   models/training_demo_v2/end2end/ (no checkpoint: the comparison, not a model to continue).
#   LPCNET_CARRY_DEST overrides the destination (default models/training_demo_v2).
# Everything is checked before anything is replaced: the newest checkpoint is the largest epoch
# in the file names demo2_256_<epoch>.keras, copied in before the older one is deleted.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/env.sh"
RUN="${1:-$OUTPUT_DIR/demo_model_v2/run}"
DEST="${LPCNET_CARRY_DEST:-$ROOT/models/training_demo_v2}"
fail() { echo "error: $*" >&2; exit 1; }
# The newest checkpoint: the largest epoch parsed from the file NAME demo2_256_<epoch>.keras
# (never from the folder path, which may hold underscores of its own).
newest="" newest_epoch=-1
for f in "$RUN"/demo2_256_*.keras; do
  [ -f "$f" ] || continue
  epoch="$(basename "$f" .keras)"; epoch="${epoch#demo2_256_}"
  case "$epoch" in ''|*[!0-9]*) continue ;; esac
  if [ "$((10#$epoch))" -gt "$newest_epoch" ]; then newest="$f" newest_epoch=$((10#$epoch)); fi
done
# Everything is checked before anything in $DEST is replaced or deleted.
[ -n "$newest" ] || fail "$RUN: no checkpoint demo2_256_<epoch>.keras (expected the demo-model run folder)"
[ -f "$RUN/demo2_256_config.json" ] || fail "$RUN: no demo2_256_config.json (expected the demo-model run folder)"
[ -d "$RUN/tensorboard" ] || fail "$RUN: no tensorboard folder (expected a run trained with --enable_tensorboard)"
if [ -n "${2:-}" ]; then
  for f in "$2"/*_config.json "$2/eval/quality.jsonl" "$2/tensorboard"; do
    [ -e "$f" ] || fail "$f: not found (expected the end-to-end run folder, E2E_RUN_DIR)"
  done
fi
mkdir -p "$DEST"
# the loss curve first (it refuses a run without loss scalars, leaving loss.csv as it was)
python -m lpcnet.train_eval loss-curve "$RUN/tensorboard" "$DEST/loss.csv"
name="$(basename "$newest")"
cp "$newest" "$DEST/.$name.tmp" && mv -f "$DEST/.$name.tmp" "$DEST/$name"
cp "$RUN/demo2_256_config.json" "$DEST/"
[ -f "$RUN/eval/quality.jsonl" ] && cp "$RUN/eval/quality.jsonl" "$DEST/"
find "$DEST" -maxdepth 1 -name 'demo2_256_*.keras' ! -name "$name" -delete
echo "carried $name -> $DEST"
if [ -n "${2:-}" ]; then
  mkdir -p "$DEST/end2end"
  cp "$2"/*_config.json "$2/eval/quality.jsonl" "$DEST/end2end/"
  python -m lpcnet.train_eval loss-curve "$2/tensorboard" "$DEST/end2end/loss.csv"
  echo "carried the end-to-end run's curves -> $DEST/end2end"
fi
