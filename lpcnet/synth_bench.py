"""``lpcnet bench synth``: real-time factor of the native engine vs the Keras reference.

The model is the full-size network (GRU A 384, GRU B 16) with random weights whose
GRU A recurrent kernel is block-sparsified to the final densities of spec D.3
(per gate (update, reset, state) = (0.05, 0.05, 0.2), average 0.1, diagonal kept),
which is what makes the per-sample cost realistic. The input is real speech
features of the bundled slice, tiled to ``--seconds``. Everything runs on one
core (the process is pinned to one CPU). RTF = processing time / audio duration
(lower is faster), by process CPU time (robust on a shared machine: time spent
waiting for the CPU is not counted) and by wall-clock time.

TensorFlow runs with one intra-op and one inter-op thread here: with the process pinned
to one CPU, more threads only spin against each other, and that spinning counts as CPU
time (with 2 threads the Keras engine's CPU RTF measured ~10 instead of ~4, which would
flatter the ratio).
"""

from __future__ import annotations

import time

import numpy as np

from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE

DENSITY = (0.05, 0.05, 0.2)


def sparse_model_weights(cfg=None, density=DENSITY, seed: int = 0):
    """Random full-size LPCNet weights with GRU A block-sparse to ``density`` -> (weights, cfg)."""
    from lpcnet.config import ModelConfig
    from lpcnet.layers import block_mask
    from lpcnet.model import build_lpcnet, model_weights

    cfg = cfg or ModelConfig()
    weights = model_weights(build_lpcnet(cfg, training=False, seed=seed).model)
    rk = weights["gru_a"]["recurrent_kernel"].copy()
    n = cfg.gru_a
    for g in range(3):
        cols = slice(g * n, (g + 1) * n)
        rk[:, cols] *= block_mask(rk[:, cols], density[g], keep_diagonal=True)
    weights["gru_a"]["recurrent_kernel"] = rk
    return weights, cfg


def _features(seconds: float) -> np.ndarray:
    """Real speech features: the bundled slice (both speakers) tiled to ``seconds``."""
    from pathlib import Path

    from lpcnet.audio import load_speech
    from lpcnet.features import extract
    from lpcnet.formats import to_int16

    slice_dir = Path(__file__).resolve().parents[1] / "data" / "slice"
    one = np.concatenate([to_int16(load_speech(p)[0].astype(np.float64) * 32768.0)
                          for p in sorted(slice_dir.glob("*.wav"))])
    n = int(max(seconds, 0.05) * SAMPLE_RATE)
    return extract(np.tile(one, n // len(one) + 1)[:n])


def _timed(fn) -> tuple:
    """(wall seconds, process CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _best_time(fn, repeat: int) -> tuple:
    """Best (wall, CPU) of ``repeat`` calls, ordered by CPU time."""
    return min((_timed(fn) for _ in range(max(1, repeat))), key=lambda t: t[1])


def _one_tf_thread() -> int:
    """Ask TensorFlow for one intra-op / inter-op thread -> intra-op threads in effect."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:                       # runtime already initialised in this process
        pass
    return tf.config.threading.get_intra_op_parallelism_threads()


def bench_synth(args) -> dict:
    """Native float / int8 RTF on one core and the speed ratio to the Keras engine."""
    from lpcnet import synth
    from lpcnet.bench import OneCore
    from lpcnet.export import blob_from_weights, blob_to_bytes

    threads = _one_tf_thread()
    with OneCore(pick=max) as cpu:
        result = _bench(args, synth, blob_from_weights, blob_to_bytes, cpu)
    result["keras_intra_op_threads"] = threads
    return result


def _bench(args, synth, blob_from_weights, blob_to_bytes, cpu) -> dict:
    weights, cfg = sparse_model_weights()
    blob = blob_to_bytes(blob_from_weights(weights, cfg, int8=True))
    model = synth.NativeModel(blob)
    feats = _features(args.seconds)
    audio_s = len(feats) * FRAME_SIZE / SAMPLE_RATE
    rtf, wall = {}, {}
    best_level = synth.set_simd_level("auto")
    short = feats[:int(min(audio_s, 20.0) * SAMPLE_RATE / FRAME_SIZE)]
    for level in ([best_level, "avx2"] if best_level == "avx512" else [best_level]):
        synth.set_simd_level(level)
        f = feats if level == best_level else short       # the second level on <= 20 s
        f_s = len(f) * FRAME_SIZE / SAMPLE_RATE
        for name, int8 in (("float", False), ("int8", True)):
            w, c = _best_time(lambda: synth.NativeStream(model, seed=1, int8=int8).run(f), args.repeat)
            key = name if level == best_level else f"{name}_{level}"
            rtf[key], wall[key] = c / f_s, w / f_s
    synth.set_simd_level("auto")
    keras_s = min(args.reference_seconds, 0.3)
    kfeats = feats[:max(3, int(keras_s * SAMPLE_RATE / FRAME_SIZE))]
    engine = synth.KerasEngine(weights, cfg, seed=1)
    engine.run(kfeats[:3])                                       # trace the tf.function
    w, c = _timed(lambda: engine.run(kfeats))
    k_audio = len(kfeats) * FRAME_SIZE / SAMPLE_RATE
    keras_rtf, wall["keras"] = c / k_audio, w / k_audio
    result = {
        "benchmark": "synth", "cpu": cpu, "simd": best_level,
        "gru_a": cfg.gru_a, "gru_b": cfg.gru_b, "density": list(DENSITY),
        "audio_seconds": audio_s, "keras_audio_seconds": len(kfeats) * FRAME_SIZE / SAMPLE_RATE,
        "rtf_native_float": rtf["float"], "rtf_native_int8": rtf["int8"], "rtf_keras": keras_rtf,
        "speedup_float_vs_keras": keras_rtf / rtf["float"],
        "speedup_int8_vs_keras": keras_rtf / rtf["int8"],
        "wall_rtf_native_float": wall["float"], "wall_rtf_native_int8": wall["int8"],
        "wall_rtf_keras": wall["keras"], "repeat": args.repeat,
        "rtf_native_float_avx2": rtf.get("float_avx2"),
        "rtf_native_int8_avx2": rtf.get("int8_avx2"),
    }
    print(f"synthesis, one core (cpu {cpu}), {result['simd']}, GRU A {cfg.gru_a} "
          f"density {DENSITY}, {audio_s:.1f} s of speech features, best of {args.repeat}")
    print(f"{'engine':<20}{'RTF (CPU)':>10}{'x real time':>14}{'vs keras':>10}{'RTF (wall)':>12}")
    rows = [("native float", "float"), ("native int8", "int8"),
            ("native float avx2", "float_avx2"), ("native int8 avx2", "int8_avx2")]
    for label, key in rows:
        if key in rtf:
            v = rtf[key]
            print(f"{label:<20}{v:>10.4f}{1 / v:>14.1f}{keras_rtf / v:>10.0f}{wall[key]:>12.4f}")
    print(f"{'keras':<20}{keras_rtf:>10.4f}{1 / keras_rtf:>14.1f}{1:>10.0f}{wall['keras']:>12.4f}")
    return result
