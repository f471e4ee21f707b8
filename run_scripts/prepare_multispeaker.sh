#!/usr/bin/env bash
# Multi-speaker training data for demo model v2 (docs/demo-model.md): the Debian Asterisk
# G.722 prompt sets in five languages (four professional voices, one male), a few prompts per
# voice held out, then `lpcnet prepare` and `lpcnet dump-data -train`.
#
# Usage: run_scripts/prepare_multispeaker.sh [WORK_DIR [MAX_FRAMES]]
#   WORK_DIR default $OUTPUT_DIR/multispeaker; MAX_FRAMES default 3200000 (about four passes of
#   training-mode augmentation over the 2.2 h of speech: 2.0 GB data.u8, 0.46 GB features.f32).
# Writes WORK_DIR/{train,heldout}.list, heldout_voices.json, train.s16(+.json), features.f32,
# data.u8, heldout/*.wav (the held-out prompts as 16 kHz wav, for --eval-audio and lpcnet eval) and
# unseen/*.wav (voices never trained on: both CMU ARCTIC utterances of data/slice and the male
# speakers of Debian's pocketsphinx-testdata; evaluation only).
# Re-running skips what exists. Only this script needs the four extra packages; `make demo` and
# `make test` do not.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
WORK="${1:-$OUTPUT_DIR/multispeaker}"
MAX_FRAMES="${2:-3200000}"
PACKAGES="$(python -c "from lpcnet.corpus import PACKAGES; print(' '.join(PACKAGES))") pocketsphinx-testdata"

missing=()
for pkg in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[multispeaker] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$WORK"
cd "$WORK"
[ -f heldout.list ] || python -m lpcnet.corpus . --sounds "$LPCNET_ASTERISK_DIR"
[ -f train.s16 ] || python -m lpcnet.cli prepare --list train.list -o train.s16
if [ ! -d heldout ]; then
  python - <<'PY'
import json
from pathlib import Path
from lpcnet.audio import load_speech, write_wav
out = Path("heldout.tmp"); out.mkdir(exist_ok=True)
for path, voice in json.loads(Path("heldout_voices.json").read_text()).items():
    x, _ = load_speech(path)
    write_wav(out / f"{voice}__{Path(path).stem}.wav", x)
out.rename("heldout")
PY
fi
if [ ! -d unseen ]; then
  python - "$LPCNET_SLICE_DIR" <<'PY'
import sys
from pathlib import Path
from lpcnet.audio import load_speech, write_wav
from lpcnet.corpus import unseen_sources
out = Path("unseen.tmp"); out.mkdir(exist_ok=True)
for name, x in unseen_sources(Path(sys.argv[1])):
    write_wav(out / f"{name}.wav", x)
out.rename("unseen")
PY
fi
if [ ! -d eval_subset ]; then
  # What training scores every epoch (--eval-audio): 2 held-out prompts per prompt set, both ARCTIC
  # utterances and 2 pocketsphinx male recordings; the final tables use all of heldout/ and unseen/.
  mkdir -p eval_subset.tmp
  for set_ in $(python -c "from lpcnet.corpus import VOICES; print(' '.join(v.folder for v in VOICES))"); do
    ls heldout/"${set_}"__*.wav | head -2 | while read -r f; do ln -sf "$PWD/$f" eval_subset.tmp/; done
  done
  for f in unseen/arctic_a0007.wav unseen/arctic_a0009.wav unseen/psx_an4__numbers.wav unseen/psx_cards__005.wav; do
    [ -f "$f" ] && ln -sf "$PWD/$f" eval_subset.tmp/
  done
  mv eval_subset.tmp eval_subset
fi
[ -f data.u8 ] || python -m lpcnet.cli dump-data -train --seed 2 --max-frames "$MAX_FRAMES" \
  train.s16 features.f32 data.u8
python -m lpcnet.cli info --pair features.f32 data.u8
