#!/usr/bin/env bash
# Objective scores of LPCNet copy-synthesis (docs/demo-model.md): the 8 held-out Asterisk prompts
# (the training speaker, unseen prompts) and the bundled CMU ARCTIC utterances (unseen speakers),
# for each checkpoint given, with `lpcnet synth` (native engine, seed 0) and `lpcnet eval`,
# next to the listening test's two anchors.
#
# Usage: run_scripts/eval_demo_model.sh OUT_DIR NAME=CHECKPOINT [NAME=CHECKPOINT ...]
#   e.g. run_scripts/eval_demo_model.sh work/output/demo_eval demo=models/demo/lpcnet_demo_256.bin
#   CHECKPOINT: .keras, .h5 or an exported .bin. Writes OUT_DIR/pairs.csv (fields quoted), per test
#   set OUT_DIR/pairs_<set>.csv and eval_<set>.json, OUT_DIR/eval.json (both joined) and prints
#   the tables; set LPCNET_EVAL_FLAGS (e.g. --no-dnsmos) to pass flags to `lpcnet eval`.
#   NAME: letters, digits, '.', '_', '-' (it names the folder OUT_DIR/NAME and the CSV condition);
#   not anchor_lp3k5 / anchor_ulaw8 (the anchors' own), each NAME once.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
usage() {
  echo "usage: $0 OUT_DIR NAME=CHECKPOINT [NAME=CHECKPOINT ...]${1:+ ($1)}" >&2
  exit 2
}
[ $# -ge 2 ] || usage "expected an output folder and at least one NAME=CHECKPOINT"
OUT="$1"
[ -n "$OUT" ] || usage "expected an output folder"
shift
declare -A seen=()
for spec in "$@"; do
  case "$spec" in *=*) ;; *) usage "'$spec': expected NAME=CHECKPOINT" ;; esac
  cond="${spec%%=*}"
  ckpt="${spec#*=}"
  case "$cond" in
    ''|.|..|*[!A-Za-z0-9._-]*) usage "'$spec': expected a NAME of letters, digits, '.', '_', '-'" ;;
    anchor_lp3k5|anchor_ulaw8) usage "'$spec': $cond is the name of an anchor; choose another NAME" ;;
  esac
  [ -n "$ckpt" ] || usage "'$spec': expected a CHECKPOINT after '='"
  [ -z "${seen[$cond]:-}" ] || usage "'$spec': NAME $cond given twice"
  seen[$cond]=1
done
# One CSV field, quoted (paths may hold commas or quotes).
csv_field() { local v="${1//\"/\"\"}"; printf '"%s"' "$v"; }
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
    echo "$(csv_field "${cond}_${set_}"),$(csv_field "$ref"),$(csv_field "$syn")" >>"$OUT/pairs.csv.tmp"
  done
done
# The listening test's anchors give the scale: the reference low-passed at 3.5 kHz, and
# quantised to 8-bit mu-law (what LPCNet's output layer can express at best).
python - "$OUT" "${refs[@]}" <<'PY' >>"$OUT/pairs.csv.tmp"
import csv
import sys
from pathlib import Path
from lpcnet.audio import load_speech, write_wav
from lpcnet.formats import to_int16
from lpcnet.listening import lowpass_anchor, ulaw_anchor
out = Path(sys.argv[1])
rows = csv.writer(sys.stdout, quoting=csv.QUOTE_ALL, lineterminator="\n")
for ref in sys.argv[2:]:
    x = load_speech(ref)[0]                         # float in [-1, 1]
    test_set = "arctic" if "arctic" in ref else "allison"
    for name, anchor in (("anchor_lp3k5", lowpass_anchor), ("anchor_ulaw8", ulaw_anchor)):
        wav = out / name / (Path(ref).stem + ".wav")
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_wav(wav, to_int16(anchor(x) * 32768.0))
        rows.writerow([f"{name}_{test_set}", ref, str(wav)])
PY
mv "$OUT/pairs.csv.tmp" "$OUT/pairs.csv"
# `lpcnet eval` compares conditions over the same references, so each test set is scored on its
# own (pairs_<set>.csv -> eval_<set>.json); eval.json joins their pairs and tables.
python - "$OUT" <<'PY'
import csv
import sys
from pathlib import Path
from lpcnet.formats import atomic_output
out = Path(sys.argv[1])
with open(out / "pairs.csv", newline="") as f:
    rows = list(csv.DictReader(f))
for test_set in ("allison", "arctic"):
    with atomic_output(out / f"pairs_{test_set}.csv", "w") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(["condition", "reference", "synthesis"])
        w.writerows([r["condition"], r["reference"], r["synthesis"]] for r in rows
                    if r["condition"].endswith(f"_{test_set}"))
PY
for test_set in allison arctic; do
  # shellcheck disable=SC2086
  python -m lpcnet.cli eval --pairs "$OUT/pairs_$test_set.csv" --json "$OUT/eval_$test_set.json" \
    ${LPCNET_EVAL_FLAGS:-}
done
python - "$OUT" <<'PY'
import json
import sys
from pathlib import Path
from lpcnet.formats import atomic_output
out = Path(sys.argv[1])
parts = [json.loads((out / f"eval_{s}.json").read_text()) for s in ("allison", "arctic")]
joined = {"pairs": [p for d in parts for p in d["pairs"]], "table": [t for d in parts for t in d["table"]],
          "dnsmos": parts[0]["dnsmos"], "not_scored": sum(d["not_scored"] for d in parts)}
with atomic_output(out / "eval.json", "w") as f:
    json.dump(joined, f, indent=1)
print(f"wrote {out / 'eval.json'}")
PY
