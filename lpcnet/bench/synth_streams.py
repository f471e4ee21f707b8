"""Parts of ``lpcnet bench synth`` beyond the one-core RTF table (docs/benchmarks.md#synth).

* :func:`speech_like` -- random weights whose dual FC is replaced by the excitation
  distribution of real speech, so that a random-weight model synthesises speech-like
  signals (noise-excited LPC) instead of a saturated one: the embedding rows it reads and
  the sampling paths it takes are those of a trained model.
* :func:`int8_ratio` -- float vs int8 RTF of a model (the dense demo model).
* :func:`cli_path` -- CPU time per second of audio of ``lpcnet synth`` itself (a
  subprocess on the same CPU, two input lengths: the difference is the per-second cost, the
  rest is start-up) next to the harness on the same blob and features.
* :func:`stream_curve` -- aggregate seconds of audio per CPU-second with K streams per core
  (:class:`lpcnet.synth.NativeMulti`), K = 1 being the single-stream engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lpcnet.bench.harness import ROOT, best_cpu_time, speech
from lpcnet.formats import FRAME_SIZE, NB_TOTAL_FEATURES, SAMPLE_RATE, atomic_path

#: Streams per core of the multi-stream curve.
STREAM_COUNTS = (1, 2, 4, 8, 16)
#: The dense demo model (GRU A 256, trained), when present.
DEMO_BLOB = ROOT / "models" / "demo" / "lpcnet_demo_256.bin"


def speech_like(weights: dict, seconds: float = 20.0) -> dict:
    """``weights`` with the dual FC set to the excitation marginal of the bundled speech.

    The kernel is zeroed and each tree node's output is the logit of P(bit | prefix) of the
    excitation codes of real speech (data.u8 of ``lpcnet dump-data -train``), so every
    sample draws its excitation from the speech distribution; everything else keeps its
    (random) values and costs. Returns a new dict (the other layers shared).
    """
    from lpcnet.features import extract_training

    codes = extract_training(speech(seconds), seed=1)[1][:, 3].astype(np.int64)
    logit = np.zeros(256)
    for b in range(8):
        prefix, bit = codes >> (8 - b), (codes >> (7 - b)) & 1
        for node in range(1 << b):
            sel = prefix == node
            p = (bit[sel].sum() + 1.0) / (sel.sum() + 2.0)
            logit[(1 << b) + node] = np.log(p / (1 - p))
    out = dict(weights)
    md = {k: np.array(v) for k, v in weights["dual_fc"].items()}
    md["kernel"][:] = 0.0
    md["bias"][:] = 0.0
    md["bias"][:, 0] = 1.0
    md["factor"][:] = 0.0
    md["factor"][:, 0] = (logit / np.tanh(1.0)).astype(np.float32)
    out["dual_fc"] = md
    return out


def int8_ratio(model, feats, repeat: int) -> dict:
    """float and int8 CPU RTF of ``model`` (a NativeModel with int8 copies) on ``feats``."""
    from lpcnet import synth

    audio = len(feats) * FRAME_SIZE / SAMPLE_RATE
    rtf = {}
    for name, int8 in (("float", False), ("int8", True)):
        _, cpu = best_cpu_time(lambda: synth.NativeStream(model, seed=1, int8=int8).run(feats), repeat)
        rtf[name] = cpu / audio
    return {"rtf_float": rtf["float"], "rtf_int8": rtf["int8"],
            "int8_vs_float": rtf["float"] / rtf["int8"], "audio_seconds": audio}


def _child_cpu(cmd: list, env: dict) -> float:
    """CPU seconds (user + system) of one child process running ``cmd``."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()}")
    return usage.ru_utime + usage.ru_stime


def cli_path(blob: bytes, feats: np.ndarray, harness_rtf: float, repeat: int,
             short_seconds: float = 2.0, int8: bool = True) -> dict:
    """Per-second cost of ``lpcnet synth [--int8]`` vs the harness, and its start-up.

    Runs the command on the first ``short_seconds`` of ``feats`` and on all of them (each
    ``repeat`` times, the least CPU time kept); per second of audio = the difference of the
    CPU times / the difference of the durations; start-up = what the short run spends
    beyond that. The child inherits this process's CPU (pinned by the caller).
    """
    from lpcnet.formats import write_features

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    n_short = max(3, int(short_seconds * SAMPLE_RATE / FRAME_SIZE))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "w.bin").write_bytes(blob)
        write_features(tmp / "short.f32", feats[:n_short])
        write_features(tmp / "long.f32", feats)
        cpu = {}
        for name in ("short", "long"):
            cmd = [sys.executable, "-m", "lpcnet", "synth", "--checkpoint", str(tmp / "w.bin"),
                   "--features", str(tmp / f"{name}.f32"), "--output", str(tmp / f"{name}.s16")]
            cpu[name] = min(_child_cpu(cmd + (["--int8"] if int8 else []), env)
                            for _ in range(max(1, repeat)))
    seconds = {"short": n_short * FRAME_SIZE / SAMPLE_RATE, "long": len(feats) * FRAME_SIZE / SAMPLE_RATE}
    per_second = (cpu["long"] - cpu["short"]) / (seconds["long"] - seconds["short"])
    return {"cli_rtf": per_second, "harness_rtf": harness_rtf,
            "cli_vs_harness": per_second / harness_rtf,
            "cli_startup_seconds": cpu["short"] - per_second * seconds["short"],
            "cli_seconds": seconds["long"], "int8": int8}


def _run_streams(model, feats, streams: int, frames: int, int8: bool) -> None:
    """``streams`` streams of ``frames`` frames each (stream s starts at frame 97 s of feats)."""
    from lpcnet import synth

    offsets = [(97 * s) % max(1, len(feats) - frames) for s in range(streams)]
    if streams == 1:
        st = synth.NativeStream(model, seed=1, int8=int8)
        for start in range(0, frames, 1000):
            st.frames(feats[offsets[0] + start:offsets[0] + min(frames, start + 1000)])
        st.flush()
        return
    multi = synth.NativeMulti(model, streams, int8=int8)
    for s in range(streams):
        multi.start(s, 1 + s)
    total = frames + synth.DELAY_FRAMES
    for t0 in range(0, total, 32):
        steps = min(32, total - t0)
        f = np.zeros((steps, streams, NB_TOTAL_FEATURES), np.float32)
        cmd = np.full((steps, streams), synth.END, np.int8)
        n = max(0, min(steps, frames - t0))
        for s in range(streams):
            f[:n, s] = feats[offsets[s] + t0:offsets[s] + t0 + n]
        cmd[:n] = synth.FEED
        multi.step(f, cmd)


def stream_curve(model, feats, stream_seconds: float, repeat: int, int8: bool = True,
                 counts=STREAM_COUNTS) -> dict:
    """Aggregate seconds of audio per CPU-second with K streams on one core.

    Each of the K streams synthesises ``stream_seconds`` of ``feats`` (different offsets);
    K = 1 is the single-stream engine (in blocks). Returns ``{"k": [...],
    "audio_per_cpu_second": [...], "gain": [...]}`` (gain: vs K = 1), best of ``repeat``.
    """
    frames = min(len(feats), max(3, int(stream_seconds * SAMPLE_RATE / FRAME_SIZE)))
    rate = []
    for k in counts:
        _, cpu = best_cpu_time(lambda: _run_streams(model, feats, k, frames, int8), repeat)
        rate.append(k * frames * FRAME_SIZE / SAMPLE_RATE / cpu)
    return {"k": list(counts), "audio_per_cpu_second": rate, "gain": [r / rate[0] for r in rate],
            "stream_seconds": frames * FRAME_SIZE / SAMPLE_RATE, "int8": int8}


def plot_stream_curve(curves: dict, path, cpu_name: str = "") -> Path:
    """Write the K curve(s) ``{label: stream_curve result}`` as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, c in curves.items():
        ax.plot(c["k"], c["audio_per_cpu_second"], "o-", label=label)
        for k, r, g in zip(c["k"], c["audio_per_cpu_second"], c["gain"]):
            ax.annotate(f"{g:.2f}x", (k, r), textcoords="offset points", xytext=(0, 6), fontsize=7,
                        ha="center")
    first = next(iter(curves.values()))
    ax.axhline(3 * first["audio_per_cpu_second"][0], color="gray", ls=":", lw=1)
    ax.annotate(f"3x {next(iter(curves))} at K=1 (target at K=8)", (1, 3 * first["audio_per_cpu_second"][0]),
                textcoords="offset points", xytext=(2, -10), fontsize=7, color="gray")
    ax.set_ylim(bottom=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(STREAM_COUNTS), [str(k) for k in STREAM_COUNTS])
    ax.set_xlabel("streams per core (K)")
    ax.set_ylabel("seconds of audio per CPU-second")
    ax.set_title(f"lpcnet synth, several files per core{' (' + cpu_name + ')' if cpu_name else ''}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def demo_blob() -> bytes | None:
    """The bundled dense demo model's blob (int8 copies included), if present."""
    return DEMO_BLOB.read_bytes() if DEMO_BLOB.is_file() else None


def print_extras(r: dict) -> None:
    """The table lines of the parts above."""
    d = r.get("demo")
    if d:
        print(f"dense demo model (GRU A 256, trained): float RTF {d['rtf_float']:.4f}, int8 RTF "
              f"{d['rtf_int8']:.4f}: int8 {d['int8_vs_float']:.2f}x float (target >= 2)")
    print(f"sparse 384 model: int8 {r['int8_vs_float']:.2f}x float (target >= 2)")
    c = r["cli"]
    print(f"CLI path (`lpcnet synth --int8`, {c['cli_seconds']:.0f} s of features): {c['cli_rtf']:.4f} "
          f"CPU s per s of audio vs harness {c['harness_rtf']:.4f} = {c['cli_vs_harness']:.2f}x "
          f"(target <= 1.10); start-up {c['cli_startup_seconds']:.2f} s CPU")
    for label, curve in r["streams"].items():
        cells = "  ".join(f"K={k}: {a:.1f} ({g:.2f}x)" for k, a, g in
                          zip(curve["k"], curve["audio_per_cpu_second"], curve["gain"]))
        print(f"{label}, s of audio per CPU-s: {cells}")
    k8 = r["streams"]["int8"]
    if 8 in k8["k"]:
        print(f"int8 aggregate at K=8: {k8['gain'][k8['k'].index(8)]:.2f}x single-stream (target >= 3)")


def extras(model, blob: bytes, feats, harness_int8_rtf: float, harness_float_rtf: float,
           repeat: int, stream_seconds: float = 10.0, demo_seconds: float = 20.0,
           plot: str | None = None) -> dict:
    """All the parts above for ``lpcnet bench synth`` (on the caller's pinned CPU)."""
    from lpcnet.callbacks import cpu_name

    r = {"int8_vs_float": harness_float_rtf / harness_int8_rtf, "cpu_name": cpu_name()}
    blob_demo = demo_blob()
    if blob_demo is not None:
        from lpcnet import synth

        demo = synth.NativeModel(blob_demo, str(DEMO_BLOB))
        r["demo"] = int8_ratio(demo, feats[:int(demo_seconds * SAMPLE_RATE / FRAME_SIZE)], repeat)
    r["cli"] = cli_path(blob, feats, harness_int8_rtf, repeat)
    r["streams"] = {name: stream_curve(model, feats, stream_seconds, repeat, int8=int8)
                    for name, int8 in (("int8", True), ("float", False))}
    if plot:
        r["plot"] = str(plot_stream_curve(
            {f"{n}, sparse 384 model": c for n, c in r["streams"].items()}, plot, r["cpu_name"]))
    print_extras(r)
    return r
