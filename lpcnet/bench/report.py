"""Tables and plots of measurements: training summary JSONs beside the seed's numbers, scaling, synthesis RTF.

A *run* is one ``summary.json`` written by ``lpcnet train --use_performance True``
(schema in docs/training.md): ``overall_stats.throughput_mean`` in training
sequences/s (one sequence = 2400 samples = 0.15 s of audio), ``batch_size`` the
global batch, and ``metadata`` with ``precision`` and ``world_size``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lpcnet.config import SEQ_SAMPLES
from lpcnet.errors import FormatError
from lpcnet.formats import SAMPLE_RATE

#: The seed's published training throughput (Cambricon README; docs/benchmarks.md): MLU370-X8,
#: batch 16 per card, sequences/s. {cards: (fp32, amp)}
SEED_MLU370_X8 = {1: (3.00, 2.76), 4: (11.35, 9.98), 8: (19.06, 17.03)}
#: Seconds of audio in one training sequence (0.15).
SEQUENCE_SECONDS = SEQ_SAMPLES / SAMPLE_RATE


def load_run(path, label: str | None = None) -> dict:
    """One summary JSON -> flat dict: label, devices (world size), precision, seq_s, batch, e2e."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        stats, meta = d["overall_stats"], d.get("metadata", {})
        seq_s = float(stats["throughput_mean"])
    except FileNotFoundError:
        raise FormatError(f"{path}: throughput summary not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{path}: not a training summary JSON (expected overall_stats."
                          f"throughput_mean; {type(exc).__name__}: {exc})") from None
    world = int(meta.get("world_size", 1)) * int(meta.get("replicas", 1))
    precision = str(meta.get("precision", "fp32"))
    return {"label": label or f"{precision}, {world} proc", "devices": world,
            "precision": "amp" if precision.startswith("amp") else "fp32",
            "precision_detail": precision, "seq_s": seq_s,
            "audio_s_per_s": seq_s * SEQUENCE_SECONDS, "batch_size": int(stats["batch_size"]),
            "e2e_s": float(stats["e2e"]), "device_name": meta.get("cpu") or meta.get("devices"),
            "path": str(path)}


def runs_table(runs) -> str:
    """Markdown table of runs: processes | global batch | precision | seq/s | audio s/s | speed-up."""
    base = {r["precision"]: r["seq_s"] for r in runs if r["devices"] == 1}
    lines = ["| processes | global batch | precision | sequences/s | audio s/s | vs 1 process |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in sorted(runs, key=lambda r: (r["precision"], r["devices"])):
        ref = base.get(r["precision"])
        speed = f"{r['seq_s'] / ref:.2f}x" if ref else "-"
        lines.append(f"| {r['devices']} | {r['batch_size']} | {r['precision_detail']} | "
                     f"{r['seq_s']:.2f} | {r['audio_s_per_s']:.2f} | {speed} |")
    return "\n".join(lines)


def plot_scaling(runs, reference=SEED_MLU370_X8, reference_label="seed, MLU370-X8 (published)") -> Figure:
    """Sequences/s vs processes for FP32 and AMP, ideal-scaling lines, and the seed's numbers.

    Left: absolute throughput (log scale); right: speed-up over one process with the
    ideal line, for our runs and the reference.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    colours = {"fp32": "tab:blue", "amp": "tab:orange"}
    for prec in ("fp32", "amp"):
        pts = sorted((r["devices"], r["seq_s"]) for r in runs if r["precision"] == prec)
        if pts:
            n, s = np.array(pts, dtype=float).T
            ax.plot(n, s, "o-", color=colours[prec], label=f"ours, {prec}")
            ax.plot(n, s[0] * n / n[0], ":", color=colours[prec], lw=1)
            if n[0] == 1:
                ax2.plot(n, s / s[0], "o-", color=colours[prec], label=f"ours, {prec}")
        if reference:
            rn = np.array(sorted(reference), dtype=float)
            rs = np.array([reference[int(k)][0 if prec == "fp32" else 1] for k in rn])
            ax.plot(rn, rs, "s--", color=colours[prec], alpha=0.5, label=f"{reference_label}, {prec}")
            ax2.plot(rn, rs / rs[0], "s--", color=colours[prec], alpha=0.5,
                     label=f"{reference_label}, {prec}")
    top = max([r["devices"] for r in runs] + list(reference or [1]))
    ax2.plot([1, top], [1, top], "k-", lw=0.8, label="ideal (linear)")
    ax.set(xlabel="processes / devices", ylabel="sequences/s (2400 samples)", yscale="log",
           title="training throughput (dotted: ideal scaling of ours)")
    ax2.set(xlabel="processes / devices", ylabel="speed-up over 1", title="scaling")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    return fig


def plot_amp_speedup(runs, reference=SEED_MLU370_X8) -> Figure:
    """AMP / FP32 throughput ratio per process count, ours beside the seed's (1.0 = no gain).

    Bars sit at their process count: one slot per count present in either set, ours on the
    left of a slot and the seed's on the right, so np=2 is never drawn under "4".
    """
    ours = {}
    for r in runs:
        ours.setdefault(r["devices"], {})[r["precision"]] = r["seq_s"]
    mine = {n: v["amp"] / v["fp32"] for n, v in ours.items() if {"amp", "fp32"} <= v.keys()}
    seed = {n: amp / fp32 for n, (fp32, amp) in (reference or {}).items()}
    counts = sorted(set(mine) | set(seed))
    slot = {n: i for i, n in enumerate(counts)}
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.35
    if mine:
        ax.bar([slot[n] - width / 2 for n in sorted(mine)], [mine[n] for n in sorted(mine)], width,
               label="ours")
    if seed:
        ax.bar([slot[n] + width / 2 for n in sorted(seed)], [seed[n] for n in sorted(seed)], width,
               alpha=0.6, label="seed MLU370-X8")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(counts)), [str(n) for n in counts])
    ax.set(xlabel="processes / devices", ylabel="AMP / FP32 throughput",
           title="is mixed precision worth it? (> 1 = faster)")
    if mine or seed:
        ax.legend(fontsize=8)
    return fig


def plot_synth_rtf(results: dict) -> Figure:
    """Real-time factor per synthesis engine (``{engine: rtf}``), log scale; 1.0 = real time."""
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    names = list(results)
    ax.barh(names, [results[k] for k in names], color="tab:green")
    ax.axvline(1.0, color="k", lw=0.8, label="real time")
    ax.set(xscale="log", xlabel="real-time factor (s of CPU per s of audio, one core)",
           title="synthesis speed")
    ax.legend(fontsize=8)
    return fig


# --- Horovod scaling runs (notebook 04, ``lpcnet bench scaling``) -----------------------
def scaling_rows(summaries) -> list[dict]:
    """One row per run, by world size: processes, global batch, sequences/s, s/step, efficiency.

    ``summaries`` are throughput JSONs (``--use_performance``) of runs that differ in the
    number of processes; efficiency = throughput / (processes x throughput of the
    smallest run per process), 1.0 = linear scaling.
    """
    runs = sorted(summaries, key=lambda s: s["metadata"].get("world_size", 1))
    if not runs:
        return []
    base = runs[0]
    base_per_proc = base["overall_stats"]["throughput_mean"] / base["metadata"].get("world_size", 1)
    rows = []
    for s in runs:
        n = s["metadata"].get("world_size", 1)
        thr = s["overall_stats"]["throughput_mean"]
        rows.append({"processes": n, "global_batch": s["overall_stats"]["batch_size"],
                     "seq_per_s": thr, "s_per_step": s["overall_stats"]["e2e"],
                     "efficiency": thr / (n * base_per_proc)})
    return rows


def scaling_figure(summaries):
    """Sequences/s against processes (with linear scaling) and each run's loss curve, side by side.

    Loss curves come from ``metadata.loss_per_step`` (the running mean of each epoch, averaged
    over ranks) of the throughput JSONs written by ``lpcnet train --use_performance``.
    Returns a ``matplotlib.figure.Figure``.
    """
    rows = scaling_rows(summaries)
    runs = sorted(summaries, key=lambda s: s["metadata"].get("world_size", 1))
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1 + len(runs), 1)
    n = [r["processes"] for r in rows]
    thr = [r["seq_per_s"] for r in rows]
    if rows:
        per = rows[0]["seq_per_s"] / rows[0]["processes"]
        ax.plot(n, [per * k for k in n], "k--", lw=1, label="linear")
    ax.plot(n, thr, "o-", label="measured")
    for r in rows:
        ax.annotate(f"{r['efficiency']:.0%}", (r["processes"], r["seq_per_s"]),
                    textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set(xlabel="processes", ylabel="sequences / s", title="throughput", xticks=n)
    ax.legend(fontsize=8)
    share = None
    for i, s in enumerate(runs):
        a = fig.add_subplot(1, 1 + len(runs), i + 2, sharey=share)
        share = share or a
        loss = s["metadata"].get("loss_per_step", [])
        a.plot(np.arange(1, len(loss) + 1), loss, lw=1)
        meta = s["metadata"]
        a.set(xlabel="step", ylabel="loss (running mean per epoch)",
              title=f"np={meta.get('world_size', 1)}, global batch {s['overall_stats']['batch_size']}")
    return fig
