#!/usr/bin/env bash
# Train (or continue) demo model v2 (docs/demo-model.md): GRU A 256 / GRU B 16 on the
# multi-speaker Asterisk corpus (four voices, five languages), bfloat16 AMP, held-out speech
# scored beside training every epoch (--eval-audio).
#
# Usage: run_scripts/train_demo_model.sh [WORK_DIR [extra `lpcnet train` flags...]]
#   WORK_DIR default $OUTPUT_DIR/demo_model_v2. Stop it any time (Ctrl-C): the last finished
#   epoch (500 steps) is kept, and re-running the script continues the run (--resume). The run in
#   progress is carried in models/training_demo_v2/ (its newest checkpoint and quality curve): a fresh
#   WORK_DIR starts from there, so the recipe continues across machines and sessions.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/env.sh"
WORK="${1:-$OUTPUT_DIR/demo_model_v2}"
CARRIED="$ROOT/models/training_demo_v2"
"$ROOT/run_scripts/prepare_multispeaker.sh" "$WORK"
cd "$WORK"
mkdir -p run
if ! ls run/demo2_256_*.keras >/dev/null 2>&1 && ls "$CARRIED"/demo2_256_*.keras >/dev/null 2>&1; then
  echo "[demo-model] continuing the carried run: $(ls "$CARRIED"/demo2_256_*.keras)"
  cp "$CARRIED"/demo2_256_*.keras "$CARRIED"/demo2_256_config.json run/
  mkdir -p run/eval && cp "$CARRIED"/quality.jsonl run/eval/ 2>/dev/null || true
fi
ls run/demo2_256_*.keras >/dev/null 2>&1 && set -- --resume True "${@:2}" || set -- "${@:2}"
# Dense GRU A (the sparsification schedule is pushed past the run): the best quality for the
# CPU-hours available (docs/demo-model.md). Threads: LPCNET_NUM_THREADS (env.sh).
exec python -m lpcnet.train --features features.f32 --data data.u8 --model_dir run --output demo2 \
  --grua-size 256 --batch_size 16 --epochs 400 --steps_per_epoch 500 \
  --sparsify-schedule 1000000 2000000 400 --use_amp True --use_performance True \
  --enable_tensorboard True --use_horovod False --seed 11 --no-progress \
  --eval-audio eval_subset --eval-every 0 "$@"
