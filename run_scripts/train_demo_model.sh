#!/usr/bin/env bash
# Reproduce the kit's demo model (docs/demo-model.md): GRU A 256 / GRU B 16 trained on the
# Debian Asterisk English prompts (one female speaker), 8 prompts held out for evaluation.
#
# Usage: run_scripts/train_demo_model.sh [WORK_DIR [extra `lpcnet train` flags...]]
#   (WORK_DIR default $OUTPUT_DIR/demo_model)
#   Re-run it to continue the run (--resume) for as long as you like; stop it any time
#   (Ctrl-C): the last finished epoch is kept. Then export and evaluate as the doc shows.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
WORK="${1:-$OUTPUT_DIR/demo_model}"
PROMPTS="$LPCNET_ASTERISK_DIR/en_US_f_Allison"
HELDOUT="$LPCNET_ROOT/models/demo/heldout_prompts.txt"
mkdir -p "$WORK"
cd "$WORK"

if [ ! -f data.u8 ]; then
  # Training list: every speech prompt except the held-out ones (same selection as prepare).
  python - "$PROMPTS" "$HELDOUT" <<'EOF'
import sys
from pathlib import Path
from lpcnet.data import DEFAULT_EXCLUDES, collect_inputs
root = Path(sys.argv[1])
held = set(Path(sys.argv[2]).read_text().split())       # paths relative to the prompt folder
files = collect_inputs([root], DEFAULT_EXCLUDES)
rel = lambda f: str(Path(f).relative_to(root))
Path("train.list").write_text("".join(f"{f}\n" for f in files if rel(f) not in held))
Path("heldout.list").write_text("".join(f"{f}\n" for f in files if rel(f) in held))
EOF
  python -m lpcnet.cli prepare --list train.list -o train.s16
  # Four passes of training-mode augmentation over the 24 min of speech (600 000 frames).
  python -m lpcnet.cli dump-data -train --seed 1 --max-frames 600000 train.s16 features.f32 data.u8
fi

# Continue the run if it has a checkpoint (extra `lpcnet train` flags may follow the folder).
ls model/demo_256_*.keras >/dev/null 2>&1 && set -- --resume True "${@:2}" || set -- "${@:2}"
# Dense GRU A (the sparsification schedule starts after the run): the best quality for the
# few thousand steps a CPU gives in hours. One intra-op thread per core in TF_NUM_INTRAOP_THREADS.
exec python -m lpcnet.train --features features.f32 --data data.u8 --model_dir model \
  --output demo --grua-size 256 --batch_size 16 --epochs 60 --steps_per_epoch 250 \
  --sparsify-schedule 100000 200000 400 --use_performance True --enable_tensorboard True \
  --use_horovod False --seed 7 "$@"
