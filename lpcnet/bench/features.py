"""``lpcnet bench features``: feature extraction speed in x real time on one core (docs/benchmarks.md)."""

from __future__ import annotations

import platform

from lpcnet.bench.harness import OneCore, best_wall_time, speech
from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE


def bench_features(*, seconds: float = 120.0, reference_seconds: float = 10.0, repeat: int = 3) -> dict:
    """Feature extraction speed (x real time, one core): C -test, C -train, NumPy reference.

    Args:
        seconds: seconds of real speech (the slice, tiled) for the C extractor.
        reference_seconds: seconds for the (~50x slower) NumPy reference, timed beside the C
            extractor on the same piece.
        repeat: timed repetitions; the best is reported.

    Returns the numbers (``*_x_realtime``, ``c_over_reference``, ``simd``, ...) and prints a table.
    """
    from lpcnet import features as F
    from lpcnet.features_reference import reference_features

    with OneCore() as cpu:
        pcm = speech(seconds)
        audio_s = (len(pcm) // FRAME_SIZE) * FRAME_SIZE / SAMPLE_RATE
        F.extract(pcm[:FRAME_SIZE * 100])                          # load the library, warm caches
        t_test = best_wall_time(lambda: F.extract(pcm), repeat)
        t_train = best_wall_time(lambda: F.extract_training(pcm, seed=0), repeat)
        simd = F.simd_level()
        F.set_simd_level("scalar")                                  # the kernel's plain C path
        try:
            t_scalar = best_wall_time(lambda: F.extract(pcm), repeat)
        finally:
            F.set_simd_level("auto")
        ref_pcm = pcm[:int(min(seconds, reference_seconds) * SAMPLE_RATE)]
        ref_s = (len(ref_pcm) // FRAME_SIZE) * FRAME_SIZE / SAMPLE_RATE
        t_ref = best_wall_time(lambda: reference_features(ref_pcm), 2)
        t_c_same = best_wall_time(lambda: F.extract(ref_pcm), repeat)
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
        "repeat": repeat,
    }
    print(f"features: {audio_s:.0f} s of real speech (data/slice tiled), one core "
          f"(cpu {cpu}), SIMD {result['simd']}, best of {repeat}")
    print(f"  C   -test    {result['test_x_realtime']:8.0f}x real time")
    print(f"  C   -train   {result['train_x_realtime']:8.0f}x real time")
    print(f"  C   -test    {result['test_scalar_x_realtime']:8.0f}x real time with the scalar "
          f"cross-correlation kernel")
    print(f"  NumPy reference -test {result['reference_x_realtime']:6.1f}x real time "
          f"(on {ref_s:g} s)")
    print(f"  C / reference (same {ref_s:g} s, -test): {result['c_over_reference']:.0f}x faster")
    return result
