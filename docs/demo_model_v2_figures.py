"""Time-to-quality figure and table of demo model v2 (docs/demo-model.md).

Usage: python docs/demo_model_v2_figures.py [QUALITY_JSONL]
  (default models/training_demo_v2/quality.jsonl, carried by run_scripts/carry_demo_training.sh)
Writes docs/demo_model_v2_quality.png and prints the markdown table of the doc.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


def main(path: str) -> None:
    from lpcnet.demo import _save_figure
    from lpcnet.train_eval import history, load_rows, plot_time_to_quality, trend

    rows = load_rows(path)
    fig = plot_time_to_quality(rows, metrics=("stoi", "pesq_wb", "gpe_pct", "dnsmos_ovrl"),
                               reference={"stoi": 0.90, "pesq_wb": 2.0, "gpe_pct": 5.0})
    fig.suptitle("demo model v2: held-out prompts of the training voices and unseen voices "
                 "(dashed: the targets)")
    _save_figure(fig, DOCS / "demo_model_v2_quality.png")
    print("| step | sequences | STOI ↑ | PESQ-WB ↑ | GPE % ↓ | f0 RMSE cents ↓ | DNSMOS OVRL ↑ |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    hist = history(rows)
    for h in hist:
        if not (h["step"] <= 5000 or h["step"] % 2500 == 0 or h is hist[-1]):
            continue
        print(f"| {h['step']} | {h['sequences']} | {h.get('stoi', float('nan')):.3f} | "
              f"{h.get('pesq_wb', float('nan')):.2f} | {h.get('gpe_pct', float('nan')):.1f} | "
              f"{h.get('f0_rmse_cents', float('nan')):.0f} | {h.get('dnsmos_ovrl', float('nan')):.2f} |")

    since = hist[-1]["step"] // 2
    print(f"\ntrend since step {since} (line against log2(sequences); lpcnet.train_eval.trend):")
    for metric, target in (("stoi", 0.90), ("pesq_wb", 2.0), ("gpe_pct", 5.0)):
        t = trend(rows, metric, target, since_step=since)
        reach = ("never on this line" if t["sequences_to_target"] is None
                 else "reached" if t["sequences_to_target"] == hist[-1]["sequences"]
                 else f"at {t['sequences_to_target']:.3g} sequences")
        print(f"- {metric}: {t['per_doubling']:+.3f} per doubling of the sequences, line now "
              f"{t['fit_now']:.3f}, target {target}: {reach}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "models" / "training_demo_v2" / "quality.jsonl"))
