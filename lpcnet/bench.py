"""Benchmarks of the kit: ``python -m lpcnet.bench NAME`` / ``lpcnet bench NAME``.

Each benchmark is a function ``(args) -> dict`` registered in :data:`BENCHMARKS`
(one line to add ``train`` or ``synth``); it prints a short table and returns
its numbers, which ``--json`` also appends as one line to a file.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT / "data" / "slice"


class OneCore:
    """Context: run on a single CPU so the numbers are per core; restores the CPU set after.

    ``pick`` chooses the CPU from the allowed set (default the lowest); ``as`` gives it.
    """

    def __init__(self, pick=min):
        self.pick = pick

    def __enter__(self) -> int | None:
        self.saved = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
        if self.saved is None:
            return None
        cpu = self.pick(self.saved)
        os.sched_setaffinity(0, {cpu})
        return cpu

    def __exit__(self, *exc):
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)
        return False


def _best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _speech(seconds: float) -> np.ndarray:
    """The bundled real speech, tiled to ``seconds`` of int16 at 16 kHz."""
    from lpcnet.audio import load_speech
    from lpcnet.formats import to_int16

    parts = [to_int16(load_speech(p)[0].astype(np.float64) * 32768.0)
             for p in sorted(SLICE.glob("*.wav"))]
    one = np.concatenate(parts)
    reps = int(np.ceil(seconds * SAMPLE_RATE / len(one)))
    return np.tile(one, reps)[:int(seconds * SAMPLE_RATE)]


def bench_features(args) -> dict:
    """Feature extraction speed (x real time, one core): C -test, C -train, NumPy reference."""
    from lpcnet import features as F
    from lpcnet.features_reference import reference_features

    with OneCore() as cpu:
        pcm = _speech(args.seconds)
        audio_s = (len(pcm) // FRAME_SIZE) * FRAME_SIZE / SAMPLE_RATE
        F.extract(pcm[:FRAME_SIZE * 100])                          # load the library, warm caches
        t_test = _best_time(lambda: F.extract(pcm), args.repeat)
        t_train = _best_time(lambda: F.extract_training(pcm, seed=0), args.repeat)
        simd = F.simd_level()
        F.set_simd_level("scalar")                                  # the kernel's plain C path
        try:
            t_scalar = _best_time(lambda: F.extract(pcm), args.repeat)
        finally:
            F.set_simd_level("auto")
        # The reference is ~50x slower: time it on a shorter piece of the same speech.
        ref_pcm = pcm[:int(min(args.seconds, args.reference_seconds) * SAMPLE_RATE)]
        ref_s = (len(ref_pcm) // FRAME_SIZE) * FRAME_SIZE / SAMPLE_RATE
        t_ref = _best_time(lambda: reference_features(ref_pcm), 2)
        t_c_same = _best_time(lambda: F.extract(ref_pcm), args.repeat)
    result = {
        "benchmark": "features",
        "audio_s": audio_s,
        "test_x_realtime": audio_s / t_test,
        "train_x_realtime": audio_s / t_train,
        "test_scalar_x_realtime": audio_s / t_scalar,
        "reference_audio_s": ref_s,
        "reference_x_realtime": ref_s / t_ref,
        "c_over_reference": t_ref / t_c_same,
        "simd": simd,
        "cpu": cpu,
        "machine": platform.processor() or platform.machine(),
        "repeat": args.repeat,
    }
    print(f"features: {audio_s:.0f} s of real speech (data/slice tiled), one core "
          f"(cpu {cpu}), SIMD {result['simd']}, best of {args.repeat}")
    print(f"  C   -test    {result['test_x_realtime']:8.0f}x real time")
    print(f"  C   -train   {result['train_x_realtime']:8.0f}x real time")
    print(f"  C   -test    {result['test_scalar_x_realtime']:8.0f}x real time with the scalar "
          f"cross-correlation kernel")
    print(f"  NumPy reference -test {result['reference_x_realtime']:6.1f}x real time "
          f"(on {ref_s:g} s)")
    print(f"  C / reference (same {ref_s:g} s, -test): {result['c_over_reference']:.0f}x faster")
    return result


#: name -> (function, one-line help). Add a benchmark with one line here.
BENCHMARKS = {
    "features": (bench_features, "feature extraction x real time: C -test/-train vs NumPy reference"),
    "train": (lambda a: __import__("lpcnet.perf", fromlist=["bench_train"]).bench_train(a), "training sequences/s: our train_step vs plain Keras fit, FP32 vs bf16 AMP"),
    "scaling": (lambda a: __import__("lpcnet.perf", fromlist=["bench_scaling"]).bench_scaling(a), "Horovod weak scaling: sequences/s at np=1 and np=2, one thread per rank"),
    "synth": (lambda args: __import__("lpcnet.synth_bench", fromlist=["bench_synth"]).bench_synth(args), "synthesis RTF on one core: native float/int8 vs Keras reference"),
}


def add_arguments(p) -> None:
    p.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark to run")
    p.add_argument("--seconds", type=float, default=120.0, help="seconds of audio to process")
    p.add_argument("--reference-seconds", type=float, default=10.0,
                   help="seconds of audio for the (slow) NumPy reference")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is reported)")
    p.add_argument("--json", default=None, help="append the result as one JSON line to this file")
    p.add_argument("--gru-a", dest="gru_a", type=int, default=None,
                   help="train / scaling: GRU A units (defaults: train 384, scaling 64)")
    p.add_argument("--gru-b", dest="gru_b", type=int, default=None, help="train / scaling: GRU B units")
    p.add_argument("--batch", type=int, default=None,
                   help="train / scaling: sequences per batch (defaults: train 16, scaling 8)")
    p.add_argument("--steps", type=int, default=None, help="train / scaling: timed steps per variant")


def run(args) -> int:
    result = BENCHMARKS[args.name][0](args)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.bench", argv)


if __name__ == "__main__":
    raise SystemExit(main())
