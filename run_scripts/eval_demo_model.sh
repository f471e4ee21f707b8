#!/usr/bin/env bash
# Objective scores of LPCNet copy-synthesis (docs/demo-model.md): the 8 held-out Asterisk prompts
# (the training speaker, unseen prompts) and the bundled CMU ARCTIC utterances (unseen speakers),
# for each checkpoint given, with `lpcnet synth` (native engine, seed 0) and `lpcnet eval`,
# next to the listening test's two anchors.
#
# Usage: run_scripts/eval_demo_model.sh OUT_DIR NAME=CHECKPOINT [NAME=CHECKPOINT ...]
#   e.g. run_scripts/eval_demo_model.sh work/output/demo_eval demo=models/demo/lpcnet_demo_256.bin
#   CHECKPOINT: .keras, .h5 or an exported .bin. Writes OUT_DIR/pairs.csv, OUT_DIR/eval.json and
#   prints the table; set LPCNET_EVAL_FLAGS (e.g. --no-dnsmos) to pass flags to `lpcnet eval`.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
OUT="${1:?usage: $0 OUT_DIR NAME=CHECKPOINT [...]}"
shift
PROMPTS="$LPCNET_ASTERISK_DIR/en_US_f_Allison"
mkdir -p "$OUT"
refs=()
while read -r name; do
  refs+=("$PROMPTS/$name")
done <"$LPCNET_ROOT/models/demo/heldout_prompts.txt"
refs+=("$LPCNET_SLICE_DIR/arctic_a0007.wav" "$LPCNET_SLICE_DIR/arctic_a0009.wav")

echo "condition,reference,synthesis" >"$OUT/pairs.csv.tmp"
for spec in "$@"; do
  cond="${spec%%=*}"
  ckpt="${spec#*=}"
  mkdir -p "$OUT/$cond"
  for ref in "${refs[@]}"; do
    base="$(basename "${ref%.*}")"   # (names are unique across the prompt subfolders used)
    case "$ref" in *arctic*) set_="arctic" ;; *) set_="allison" ;; esac
    syn="$OUT/$cond/$base.wav"
    python -m lpcnet.cli synth --checkpoint "$ckpt" --audio "$ref" --output "$syn" --seed 0
    echo "${cond}_${set_},$ref,$syn" >>"$OUT/pairs.csv.tmp"
  done
done
# The listening test's anchors give the scale: the reference low-passed at 3.5 kHz, and
# quantised to 8-bit mu-law (what LPCNet's output layer can express at best).
python - "$OUT" "${refs[@]}" <<'PY' >>"$OUT/pairs.csv.tmp"
import sys
from pathlib import Path
from lpcnet.audio import load_speech, write_wav
from lpcnet.formats import to_int16
from lpcnet.listening import lowpass_anchor, ulaw_anchor
out = Path(sys.argv[1])
for ref in sys.argv[2:]:
    x = load_speech(ref)[0]                         # float in [-1, 1]
    test_set = "arctic" if "arctic" in ref else "allison"
    for name, anchor in (("anchor_lp3k5", lowpass_anchor), ("anchor_ulaw8", ulaw_anchor)):
        wav = out / name / (Path(ref).stem + ".wav")
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_wav(wav, to_int16(anchor(x) * 32768.0))
        print(f"{name}_{test_set},{ref},{wav}")
PY
mv "$OUT/pairs.csv.tmp" "$OUT/pairs.csv"
# shellcheck disable=SC2086
python -m lpcnet.cli eval --pairs "$OUT/pairs.csv" --json "$OUT/eval.json" ${LPCNET_EVAL_FLAGS:-}
