"""``lpcnet bench train``: training sequences/s, our trainer vs plain Keras fit, FP32 vs bf16 AMP.

Method and results: docs/benchmarks.md and docs/training.md (Speed).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from lpcnet.bench.harness import training_pair

#: Variants measured side by side: name -> (dtype policy, plain Keras model?).
VARIANTS = {"ours_fp32": (None, False), "keras_fit_fp32": (None, True),
            "ours_amp_bf16": ("mixed_bfloat16", False)}
#: Ratios printed at the end: name -> (numerator, denominator, issue 11 target).
RATIOS = {"ours_over_plain_fp32": ("ours_fp32", "keras_fit_fp32", 3.0),
          "amp_bf16_over_fp32": ("ours_amp_bf16", "ours_fp32", 1.5)}


def _step_timer(global_batch: int):
    """A StepTimer that also keeps the process CPU seconds of every step (``cpu_times``)."""
    from lpcnet.callbacks import StepTimer

    class CpuStepTimer(StepTimer):
        def on_train_batch_begin(self, batch, logs=None):
            self._c0 = time.process_time()
            super().on_train_batch_begin(batch, logs)

        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            self.cpu_times.append(time.process_time() - self._c0)

    timer = CpuStepTimer(global_batch)
    timer.cpu_times = []
    return timer


def _fit_times(model, loader, steps: int) -> tuple:
    """(wall, process CPU) seconds of each of ``steps`` training steps of ``model.fit``."""
    timer = _step_timer(loader.batch_size)
    model.fit(loader.as_dataset(0), epochs=1, steps_per_epoch=steps, callbacks=[timer],
              verbose=0, shuffle=False)
    return timer.times, timer.cpu_times


def _build_variants(cfg, variants, jit_compile: bool, loader, warmup: int) -> dict:
    """Compiled models of the chosen variants, each traced by ``warmup`` untimed steps."""
    import keras

    from lpcnet.bench.baselines import plain_keras_model
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer

    models = {}
    for name, (policy, plain) in VARIANTS.items():
        if name not in variants:
            continue
        keras.utils.set_random_seed(0)
        # Ours: FusedGRU loops (native kernel, not an XLA op, so never jit-compiled);
        # plain: the same network written the straightforward way, Keras' default train_step.
        model = build_lpcnet(cfg, dtype_policy=policy, seed=0).model
        if plain:
            model = plain_keras_model(model)
        compile_lpcnet(model, make_optimizer())
        model.jit_compile = jit_compile and plain
        _fit_times(model, loader, warmup)          # tracing / compilation, not timed
        models[name] = model
    return models


def _interleaved_times(models: dict, loader, steps: int, rounds: int) -> dict:
    """(wall, CPU) step times per variant, the variants taking turns for ``rounds`` rounds
    (order rotating)."""
    times = {name: ([], []) for name in models}
    per_round = max(1, steps // rounds)
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = _fit_times(models[name], loader, per_round)
            times[name][0].extend(wall)
            times[name][1].extend(cpu)
    return times


def _print_report(out: dict) -> None:
    print(f"train: GRU A {out['gru_a']} / GRU B {out['gru_b']}, batch {out['batch']}, {out['steps']} "
          f"timed steps in {out['rounds']} interleaved rounds after {out['warmup']} warm-up, "
          f"jit {out['jit_compile']}, {out['device']}")
    for name, r in out["variants"].items():
        print(f"  {name:15s} {r['seq_per_s']:7.2f} seq/s  median {r['s_per_step_median']:6.3f} s/step "
              f"(p90 {r['s_per_step_p90']:.3f}; CPU {r['cpu_s_per_step_median']:.3f} s/step)")
    for key, value in out["ratios"].items():
        num, den, target = RATIOS[key]
        print(f"  {num} / {den}: {value:.2f}x wall, {out['cpu_ratios'][key]:.2f}x CPU time "
              f"(issue 11 target >= {target}x)")


def bench_train(*, gru_a: int = 384, gru_b: int = 16, batch: int = 16, steps: int = 12,
                warmup: int = 2, rounds: int = 3, jit_compile: bool = False, features=None,
                data=None, variants=tuple(VARIANTS)) -> dict:
    """Training throughput (sequences/s) on the real speech slice, one process, CPU or GPU.

    Variants, measured in the same process on the same batches: ``ours_fp32`` (LPCNetModel's
    explicit train_step: the trainer of ``lpcnet train``), ``keras_fit_fp32`` (the same layers
    as a plain functional ``keras.Model`` with Keras' default train_step,
    :func:`lpcnet.bench.baselines.plain_keras_model`), and ``ours_amp_bf16`` (mixed_bfloat16);
    ``variants`` picks a subset. Each variant first runs ``warmup`` untimed steps (tracing);
    then the variants take turns for ``rounds`` rounds of ``steps / rounds`` timed steps, so
    that load from other processes affects all alike; throughput uses the median step time.
    The median process CPU time per step is reported beside it (on a shared machine the
    CPU-time ratios are the steadier: they do not count the time other processes took).
    ``features`` / ``data``: a training pair (default: made from the bundled slice).

    Returns the numbers per variant and the ratios (wall: ``ratios``, CPU: ``cpu_ratios``),
    and prints them.
    """
    import keras
    import tensorflow as tf

    from lpcnet.callbacks import cpu_name
    from lpcnet.config import SEQ_SAMPLES, ModelConfig
    from lpcnet.data import TrainingLoader

    with tempfile.TemporaryDirectory() as tmp:
        if features is None:
            features, data = training_pair(Path(tmp))
        loader = TrainingLoader(features, data, batch, seed=0)
        models = _build_variants(ModelConfig(gru_a=gru_a, gru_b=gru_b), variants, jit_compile,
                                 loader, warmup)
        times = _interleaved_times(models, loader, steps, rounds)
    results = {}
    for name, (t, c) in times.items():
        t, c = np.asarray(t), np.asarray(c)
        results[name] = {"seq_per_s": float(loader.batch_size / np.median(t)),
                         "s_per_step_median": float(np.median(t)), "s_per_step_mean": float(t.mean()),
                         "s_per_step_p90": float(np.percentile(t, 90)), "steps": int(len(t)),
                         "cpu_s_per_step_median": float(np.median(c))}
    pairs = {key: (num, den) for key, (num, den, _) in RATIOS.items() if num in results and den in results}
    ratios = {key: results[num]["seq_per_s"] / results[den]["seq_per_s"] for key, (num, den) in pairs.items()}
    cpu_ratios = {key: results[den]["cpu_s_per_step_median"] / results[num]["cpu_s_per_step_median"]
                  for key, (num, den) in pairs.items()}
    out = {"benchmark": "train", "gru_a": gru_a, "gru_b": gru_b, "batch": batch, "steps": steps,
           "warmup": warmup, "rounds": rounds, "jit_compile": jit_compile, "seq_len": SEQ_SAMPLES,
           "device": "GPU" if tf.config.list_physical_devices("GPU") else cpu_name(),
           "tf_version": tf.__version__, "keras_version": keras.__version__, "variants": results,
           "ratios": ratios, "cpu_ratios": cpu_ratios}
    _print_report(out)
    return out
