#!/usr/bin/env bash
# Finish a demo model (docs/demo-model.md): a checkpoint -> the seed-style .h5 and the int8
# native blob (together at most 10 MB), then the per-voice table of the blob with the native
# int8 engine (seed 0): the training voices' held-out prompts (WORK_DIR/heldout) and the unseen
# voices (WORK_DIR/unseen), `lpcnet eval`'s metrics against the targets, DNSMOS OVRL next to the
# recordings' own.
#
# Usage: run_scripts/finish_demo_model.sh CHECKPOINT WORK_DIR [OUT_DIR]
#   CHECKPOINT: .keras or .h5. WORK_DIR: the folder run_scripts/prepare_multispeaker.sh prepared.
#   OUT_DIR default $OUTPUT_DIR/demo_model_v2/finished (a staging folder: models/demo/ is only
#   written when given explicitly). Writes OUT_DIR/lpcnet_demo_256.h5, lpcnet_demo_256.bin,
#   voice_table.json (rows, per-voice means, reference DNSMOS), voice_table.md and the
#   synthesised speech in OUT_DIR/voice_audio/; prints the table. LPCNET_EVAL_FLAGS (e.g.
#   --no-dnsmos) go to `python -m lpcnet.train_eval voice-table`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/env.sh"
if [ $# -lt 2 ] || [ $# -gt 3 ] || [ -z "$1" ] || [ -z "$2" ]; then
  echo "usage: $0 CHECKPOINT WORK_DIR [OUT_DIR]" >&2
  exit 2
fi
CKPT="$1"
WORK="$2"
OUT="${3:-$OUTPUT_DIR/demo_model_v2/finished}"
MAX_BYTES=10000000
for d in heldout unseen; do
  if [ ! -d "$WORK/$d" ]; then
    echo "error: $WORK/$d: no such folder (expected a WORK_DIR of run_scripts/prepare_multispeaker.sh)" >&2
    exit 1
  fi
done
mkdir -p "$OUT"
t0=$(date +%s)
python -m lpcnet.cli export --int8 --h5 "$OUT/lpcnet_demo_256.h5" "$CKPT" "$OUT/lpcnet_demo_256.bin"
total=$(( $(stat -c %s "$OUT/lpcnet_demo_256.h5") + $(stat -c %s "$OUT/lpcnet_demo_256.bin") ))
echo "model files: $total bytes (limit $MAX_BYTES)"
if [ "$total" -gt "$MAX_BYTES" ]; then
  echo "error: $OUT: lpcnet_demo_256.h5 + .bin are $total bytes, over the $MAX_BYTES limit" >&2
  exit 1
fi
# shellcheck disable=SC2086
python -m lpcnet.train_eval voice-table "$OUT/lpcnet_demo_256.bin" --int8 \
  --heldout "$WORK/heldout" --unseen "$WORK/unseen" --audio-dir "$OUT/voice_audio" \
  --json "$OUT/voice_table.json" --markdown "$OUT/voice_table.md" ${LPCNET_EVAL_FLAGS:-}
echo "finished in $(( $(date +%s) - t0 )) s: $OUT"
