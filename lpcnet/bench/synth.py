"""``lpcnet bench synth``: real-time factor of the native engine vs the Keras reference.

The model is the full-size network (GRU A 384, GRU B 16) with random weights whose GRU A
recurrent kernel is block-sparsified to the default final densities of training
(:data:`lpcnet.config.GRU_A_DENSITY`, diagonal kept), which is what makes the per-sample
cost realistic. The input is real speech features of the bundled slice, tiled to
``seconds``. Everything runs on one core (the process is pinned to one CPU). RTF =
processing time / audio duration (lower is faster), by process CPU time (robust on a shared
machine: time spent waiting for the CPU is not counted) and by wall-clock time.

TensorFlow runs with one intra-op and one inter-op thread here: with the process pinned
to one CPU, more threads only spin against each other, and that spinning counts as CPU
time (with 2 threads the Keras engine's CPU RTF measured ~10 instead of ~4, which would
flatter the ratio). Results: docs/benchmarks.md.
"""

from __future__ import annotations

from lpcnet.bench.harness import OneCore, best_cpu_time, check_output_file, speech, timed
from lpcnet.config import GRU_A_DENSITY
from lpcnet.formats import FRAME_SIZE, SAMPLE_RATE

#: Seconds of features for the second (AVX2) level when the best level is AVX-512.
SECOND_LEVEL_SECONDS = 20.0
#: At most this many seconds of audio for the (slow) Keras engine.
KERAS_MAX_SECONDS = 0.3


def sparse_model_weights(cfg=None, density=GRU_A_DENSITY, seed: int = 0):
    """Random LPCNet weights (default full size) with GRU A block-sparse to ``density`` -> (weights, cfg)."""
    from lpcnet.config import ModelConfig
    from lpcnet.model import build_lpcnet, model_weights
    from lpcnet.sparsity import sparsify_gates

    cfg = cfg or ModelConfig()
    weights = model_weights(build_lpcnet(cfg, training=False, seed=seed).model)
    weights["gru_a"]["recurrent_kernel"] = sparsify_gates(
        weights["gru_a"]["recurrent_kernel"], cfg.gru_a, density, keep_diagonal=True)
    return weights, cfg


def _one_tf_thread() -> int:
    """Ask TensorFlow for one intra-op / inter-op thread -> intra-op threads in effect."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:                       # runtime already initialised in this process
        pass
    return tf.config.threading.get_intra_op_parallelism_threads()


def _native_rtfs(synth, model, feats, repeat: int) -> tuple:
    """({variant: CPU RTF}, {variant: wall RTF}, best SIMD level) of the native engine.

    Variants: ``float``, ``int8`` at the best level; with AVX-512 also ``float_avx2``,
    ``int8_avx2`` on the first :data:`SECOND_LEVEL_SECONDS` seconds.
    """
    rtf, wall = {}, {}
    best_level = synth.set_simd_level("auto")
    short = feats[:int(SECOND_LEVEL_SECONDS * SAMPLE_RATE / FRAME_SIZE)]
    try:
        for level in ([best_level, "avx2"] if best_level == "avx512" else [best_level]):
            synth.set_simd_level(level)
            f = feats if level == best_level else short
            f_s = len(f) * FRAME_SIZE / SAMPLE_RATE
            for name, int8 in (("float", False), ("int8", True)):
                w, c = best_cpu_time(lambda: synth.NativeStream(model, seed=1, int8=int8).run(f), repeat)
                key = name if level == best_level else f"{name}_{level}"
                rtf[key], wall[key] = c / f_s, w / f_s
    finally:
        synth.set_simd_level("auto")
    return rtf, wall, best_level


def _keras_rtf(synth, weights, cfg, feats, reference_seconds: float) -> tuple:
    """(CPU RTF, wall RTF, seconds of audio) of the Keras engine after a warm-up call."""
    kfeats = feats[:max(3, int(min(reference_seconds, KERAS_MAX_SECONDS) * SAMPLE_RATE / FRAME_SIZE))]
    engine = synth.KerasEngine(weights, cfg, seed=1)
    engine.run(kfeats[:3])                                       # trace the tf.function
    w, c = timed(lambda: engine.run(kfeats))
    audio = len(kfeats) * FRAME_SIZE / SAMPLE_RATE
    return c / audio, w / audio, audio


def _print_table(result: dict, rtf: dict, wall: dict, keras_rtf: float) -> None:
    print(f"synthesis, one core (cpu {result['cpu']}), {result['simd']}, GRU A {result['gru_a']} "
          f"density {tuple(result['density'])}, {result['audio_seconds']:.1f} s of speech features, "
          f"best of {result['repeat']}")
    print(f"{'engine':<20}{'RTF (CPU)':>10}{'x real time':>14}{'vs keras':>10}{'RTF (wall)':>12}")
    rows = [("native float", "float"), ("native int8", "int8"),
            ("native float avx2", "float_avx2"), ("native int8 avx2", "int8_avx2")]
    for label, key in rows:
        if key in rtf:
            v = rtf[key]
            print(f"{label:<20}{v:>10.4f}{1 / v:>14.1f}{keras_rtf / v:>10.0f}{wall[key]:>12.4f}")
    print(f"{'keras':<20}{keras_rtf:>10.4f}{1 / keras_rtf:>14.1f}{1:>10.0f}{wall['keras']:>12.4f}")


def bench_synth(*, seconds: float = 120.0, reference_seconds: float = KERAS_MAX_SECONDS, repeat: int = 3,
                plot: str | None = None) -> dict:
    """Native float / int8 RTF on one core and the speed ratio to the Keras engine; int8 vs
    float on the sparse and the dense demo model, the CLI path vs this harness, and K streams
    per core (lpcnet.bench.synth_streams).

    Args:
        seconds: seconds of speech features for the native engine.
        reference_seconds: seconds for the Keras engine (at most 0.3: it is ~100x slower).
        repeat: timed repetitions of each native variant; the best (by CPU time) is reported.
        plot: write the streams-per-core curve to this PNG (checked before anything runs).
    """
    if plot:
        check_output_file(plot, "--plot", suffix=".png")
    from lpcnet import synth
    from lpcnet.bench.synth_streams import extras, speech_like
    from lpcnet.export import blob_from_weights, blob_to_bytes
    from lpcnet.features import extract

    threads = _one_tf_thread()
    with OneCore(pick=max) as cpu:
        weights, cfg = sparse_model_weights()
        weights = speech_like(weights)            # speech-like excitation (not a saturated signal)
        blob = blob_to_bytes(blob_from_weights(weights, cfg, int8=True))
        model = synth.NativeModel(blob)
        feats = extract(speech(max(seconds, 0.05)))
        audio_s = len(feats) * FRAME_SIZE / SAMPLE_RATE
        rtf, wall, best_level = _native_rtfs(synth, model, feats, repeat)
        keras_rtf, wall["keras"], keras_audio = _keras_rtf(synth, weights, cfg, feats, reference_seconds)
        _print_table({"cpu": cpu, "simd": best_level, "gru_a": cfg.gru_a, "density": GRU_A_DENSITY,
                      "audio_seconds": audio_s, "repeat": repeat}, rtf, wall, keras_rtf)
        more = extras(model, blob, feats, rtf["int8"], rtf["float"], repeat, plot=plot)
    result = {
        "benchmark": "synth", "cpu": cpu, "simd": best_level,
        "gru_a": cfg.gru_a, "gru_b": cfg.gru_b, "density": list(GRU_A_DENSITY),
        "audio_seconds": audio_s, "keras_audio_seconds": keras_audio,
        "rtf_native_float": rtf["float"], "rtf_native_int8": rtf["int8"], "rtf_keras": keras_rtf,
        "speedup_float_vs_keras": keras_rtf / rtf["float"],
        "speedup_int8_vs_keras": keras_rtf / rtf["int8"],
        "wall_rtf_native_float": wall["float"], "wall_rtf_native_int8": wall["int8"],
        "wall_rtf_keras": wall["keras"], "repeat": repeat,
        "rtf_native_float_avx2": rtf.get("float_avx2"),
        "rtf_native_int8_avx2": rtf.get("int8_avx2"),
        "keras_intra_op_threads": threads, **more,
    }
    return result
