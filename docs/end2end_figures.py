"""Standard vs end-to-end LPCNet on the demo data: figure and table of docs/training.md.

Usage: python docs/end2end_figures.py [STANDARD_QUALITY_JSONL E2E_QUALITY_JSONL]
  (default: models/training_demo_v2/quality.jsonl, the demo model v2 run, and
  models/training_demo_v2/end2end/quality.jsonl, the end-to-end run of the same size, flags and
  speech; both carried by run_scripts/carry_demo_training.sh)
Writes docs/end2end_quality.png (both runs over the steps they share) and prints the
markdown table of the doc (means over the same held-out files at each shared step).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
CARRIED = ROOT / "models" / "training_demo_v2"


def main(standard: str, e2e: str) -> None:
    from lpcnet.demo import _save_figure
    from lpcnet.train_eval import history, load_rows, plot_runs_quality

    runs = {"standard": load_rows(standard), "end-to-end": load_rows(e2e)}
    hist = {k: {h["step"]: h for h in history(v)} for k, v in runs.items()}
    shared = sorted(set(hist["standard"]) & set(hist["end-to-end"]))
    fig = plot_runs_quality(runs, metrics=("stoi", "pesq_wb", "gpe_pct", "dnsmos_ovrl"),
                            max_step=shared[-1])
    fig.suptitle("standard vs end-to-end, GRU A 256, same speech, flags and held-out files")
    _save_figure(fig, DOCS / "end2end_quality.png")
    print("| step | variant | STOI ↑ | PESQ-WB ↑ | GPE % ↓ | f0 RMSE cents ↓ | DNSMOS OVRL ↑ |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for step in shared:
        for name in runs:
            h = hist[name][step]
            print(f"| {step} | {name} | {h.get('stoi', float('nan')):.3f} | "
                  f"{h.get('pesq_wb', float('nan')):.2f} | {h.get('gpe_pct', float('nan')):.1f} | "
                  f"{h.get('f0_rmse_cents', float('nan')):.0f} | {h.get('dnsmos_ovrl', float('nan')):.2f} |")


if __name__ == "__main__":
    args = sys.argv[1:] or [str(CARRIED / "quality.jsonl"), str(CARRIED / "end2end" / "quality.jsonl")]
    main(*args)
