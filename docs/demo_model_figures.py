"""Figures of docs/demo-model.md from an `eval_demo_model.sh` run.

Usage: python docs/demo_model_figures.py EVAL_DIR STEPS_JSON
  EVAL_DIR: the OUT_DIR of run_scripts/eval_demo_model.sh (eval.json, per-condition wavs);
  STEPS_JSON: {"condition": training steps, ...} for the conditions to plot over training.
Writes docs/demo_model_training_{allison,arctic}.png (objective scores against training steps)
and docs/demo_model_spectrograms.png (a held-out prompt and an ARCTIC utterance: reference
vs the final model's copy-synthesis).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def main(eval_dir: str, steps_json: str) -> None:
    from lpcnet.audio import load_speech
    from lpcnet.demo import _save_figure
    from lpcnet.quality import plot_over_epochs
    from lpcnet.synth import COPY_SYNTHESIS_LAG, plot_spectrograms

    eval_dir = Path(eval_dir)
    steps = json.loads(Path(steps_json).read_text())
    table = {row["condition"]: row for row in json.loads((eval_dir / "eval.json").read_text())["table"]}
    for test_set in ("allison", "arctic"):
        history = {steps[c]: table[f"{c}_{test_set}"] for c in steps if f"{c}_{test_set}" in table}
        fig = plot_over_epochs(history, ["pesq_wb", "stoi", "lsd_db", "gpe_pct", "dnsmos_ovrl"])
        for ax in fig.axes:
            ax.set_xlabel("training step")
        fig.suptitle(f"demo model over training: {'held-out Asterisk prompts' if test_set == 'allison' else 'CMU ARCTIC (unseen speakers)'}")
        _save_figure(fig, DOCS / f"demo_model_training_{test_set}.png")
    rows = {}
    pairs = json.loads((eval_dir / "eval.json").read_text())["pairs"]
    for utt in ("vm-newuser.g722", "arctic_a0007.wav"):
        ref_path = next(p["utterance"] for p in pairs if Path(p["utterance"]).name == utt)
        ref = load_speech(ref_path)[0] * 32768.0
        syn = load_speech(eval_dir / "final" / (Path(utt).stem + ".wav"))[0] * 32768.0
        n = min(len(ref), len(syn) - COPY_SYNTHESIS_LAG)
        rows[f"{utt}: reference"] = ref[:n]
        rows[f"{utt}: demo model copy-synthesis"] = syn[COPY_SYNTHESIS_LAG:COPY_SYNTHESIS_LAG + n]
    _save_figure(plot_spectrograms(rows), DOCS / "demo_model_spectrograms.png")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
