"""``lpcnet bench eval-memory``: peak memory and time of ``lpcnet eval`` against the length of a pair.

For pairs of ``minutes / 10``, ``minutes * 0.3`` and ``minutes`` minutes (default 1, 3 and 10):
the bundled real speech tiled (the reference) against the same plus white noise at −50 dBFS
(the "synthesis"), written as 16 kHz wav files; each ``lpcnet eval --reference R --synth x=S
--no-dnsmos`` runs in a fresh process whose own ``VmHWM`` is read at exit (as in
``synth-memory``). ``lpcnet eval`` scores long pairs in 30 s segments (docs/promises.md), so
its memory grows with the two signals only. Results: docs/benchmarks.md#eval-memory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from lpcnet.bench.harness import speech
from lpcnet.bench.synth_memory import _peak_mb
from lpcnet.formats import SAMPLE_RATE

#: Level of the white noise added to the reference to make the "synthesis", dB full scale.
NOISE_DBFS = -50.0


def bench_eval_memory(*, minutes: float = 10.0) -> dict:
    """Peak RSS (MB) and wall time (s) of ``lpcnet eval`` for three pair lengths.

    Args:
        minutes: the longest pair in minutes; also ``minutes / 10`` and ``minutes * 0.3``.
    """
    import soundfile as sf

    lengths = [minutes / 10.0, minutes * 0.3, minutes]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for m in lengths:
            ref = speech(m * 60.0).astype(np.float32) / 32768.0
            syn = ref + rng.standard_normal(len(ref)).astype(np.float32) * 10 ** (NOISE_DBFS / 20)
            sf.write(tmp / "ref.wav", ref, SAMPLE_RATE, subtype="PCM_16")
            sf.write(tmp / "syn.wav", np.clip(syn, -1, 1), SAMPLE_RATE, subtype="PCM_16")
            del ref, syn
            t0 = time.perf_counter()
            peak = _peak_mb("lpcnet", ["eval", "--reference", str(tmp / "ref.wav"), "--synth",
                                       f"x={tmp / 'syn.wav'}", "--no-dnsmos"], tmp)
            rows.append({"minutes": m, "peak_mb": peak, "wall_s": time.perf_counter() - t0})
    print(f"lpcnet eval peak memory (RSS of a fresh process) and wall time, real speech tiled vs "
          f"itself + noise at {NOISE_DBFS:.0f} dBFS, --no-dnsmos")
    for r in rows:
        print(f"{r['minutes']:>7.1f} min pair  {r['peak_mb']:>7.1f} MB  {r['wall_s']:>6.1f} s")
    growth = (rows[-1]["peak_mb"] - rows[0]["peak_mb"]) / max(1e-9, lengths[-1] - lengths[0])
    print(f"lpcnet eval: {growth:+.1f} MB per minute of audio")
    return {"benchmark": "eval-memory", "rows": rows, "mb_per_minute": growth}
