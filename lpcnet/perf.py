"""Training throughput and monitoring: step timer, seed-compatible summary JSON,
progress bar, TensorBoard scalars, and the ``bench_train`` benchmark.

The summary JSON follows the Cambricon seed's ``--use_performance`` rule (spec
D.10): per-step wall times between ``on_train_batch_begin`` and
``on_train_batch_end``; ``t_mean`` = mean of steps 10..299 when exactly 300
steps were timed, else of the last 40 steps (of the second half when 40 or
fewer); ``throughput_mean = global_batch / t_mean`` in sequences/s (one sequence =
2400 samples = 0.15 s of audio) and ``e2e = t_mean`` in s/step.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import keras
import numpy as np


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seed_mean_step_time(times) -> float:
    """Mean step time by the seed's rule (spec D.10)."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) == 0:
        return float("nan")
    if len(t) == 300:
        return float(t[10:300].mean())
    if len(t) > 40:
        return float(t[-40:].mean())
    return float(t[len(t) // 2:].mean())


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training step (batch begin -> batch end), in seconds."""

    def __init__(self, global_batch: int):
        super().__init__()
        self.global_batch = int(global_batch)
        self.times: list[float] = []
        self.losses: list[float] = []
        self._t0 = None

    def on_train_batch_begin(self, batch, logs=None):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._t0 is not None:
            self.times.append(time.perf_counter() - self._t0)
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))   # running mean of the epoch (all ranks)

    def recent_throughput(self, n: int = 20) -> float:
        """Sequences per second over the last ``n`` steps."""
        if not self.times:
            return 0.0
        return self.global_batch / float(np.mean(self.times[-n:]))


def performance_summary(times, global_batch: int, meta: dict | None = None) -> dict:
    """The seed's ``overall_stats`` (batch_size, throughput_mean, e2e) plus kit metadata."""
    import tensorflow as tf

    t_mean = seed_mean_step_time(times)
    summary = {"overall_stats": {"batch_size": int(global_batch),
                                 "throughput_mean": float(global_batch / t_mean),
                                 "e2e": t_mean}}
    summary["metadata"] = {"steps_timed": len(times), "tf_version": tf.__version__,
                           "keras_version": keras.__version__, "cpu": cpu_name(),
                           "unit": "sequences/s (2400 samples each); e2e in s/step",
                           **(meta or {})}
    return summary


def write_performance_summary(times, global_batch: int, meta: dict, paths) -> dict:
    """Write the summary JSON (atomically) to every path in ``paths``; return it."""
    from lpcnet.formats import atomic_output

    summary = performance_summary(times, global_batch, meta)
    for p in paths:
        with atomic_output(p, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


class Progress(keras.callbacks.Callback):
    """tqdm bar per epoch with loss, accuracy and sequences/s (replaces Keras' verbose=1)."""

    def __init__(self, steps: int, timer: StepTimer):
        super().__init__()
        self.steps, self.timer, self.bar = steps, timer, None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.params.get('epochs')}",
                        unit="step", leave=True)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{float(logs.get('loss', float('nan'))):.4f}",
                             acc=f"{float(logs.get('accuracy', float('nan'))):.4f}",
                             seq_s=f"{self.timer.recent_throughput():.2f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()


class TensorBoardLogger(keras.callbacks.Callback):
    """TensorBoard scalars: loss, accuracy, learning rate, sequences/s, per-gate density.

    Written every ``every`` steps and at each epoch end to ``log_dir``. Gate
    densities are fractions of non-zero 4x8 blocks (GRU A recurrent kernel without
    its diagonal; the GRU-A rows of GRU B's input kernel).
    """

    def __init__(self, log_dir, timer: StepTimer, sparsifiers, every: int = 10):
        super().__init__()
        self.log_dir, self.timer, self.sparsifiers = str(log_dir), timer, list(sparsifiers)
        self.every = max(1, int(every))
        self.writer = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(self.log_dir)

    def _write(self, prefix, step, logs):
        import tensorflow as tf

        from lpcnet.model import current_lr

        with self.writer.as_default(step=int(step)):
            for k in ("loss", "accuracy"):
                if k in (logs or {}):
                    tf.summary.scalar(f"{prefix}/{k}", float(logs[k]))
            tf.summary.scalar(f"{prefix}/learning_rate", current_lr(self.model.optimizer))
            tf.summary.scalar(f"{prefix}/sequences_per_s", self.timer.recent_throughput())
            for sp in self.sparsifiers:
                for gate, d in zip("zrh", sp.densities()):
                    tf.summary.scalar(f"density/{sp.layer_name}_{gate}", d)
        self.writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        step = self.sparsifiers[0].t if self.sparsifiers else batch + 1
        if step % self.every == 0:
            self._write("batch", step, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._write("epoch", epoch + 1, logs)

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


# --- benchmark: our trainer vs plain Keras fit, FP32 vs AMP -------------------------------
def _bench_data(workdir: Path):
    """Features + data of the bundled training utterance (prepare + native dump_data -train)."""
    from lpcnet.data import prepare
    from lpcnet.features import dump_data

    root = Path(__file__).resolve().parents[1]
    prepare([root / "data" / "slice" / "arctic_a0009.wav"], workdir / "input.s16", progress=False)
    dump_data(workdir / "input.s16", workdir / "features.f32", workdir / "data.u8", mode="train",
              seed=0, progress=False)
    return workdir / "features.f32", workdir / "data.u8"


def _fit_times(model, loader, steps: int) -> list:
    timer = StepTimer(loader.batch_size)
    model.fit(loader.as_dataset(0), epochs=1, steps_per_epoch=steps, callbacks=[timer],
              verbose=0, shuffle=False)
    return timer.times


def plain_keras_model(model):
    """The benchmark baseline: ``model``'s network and weights written the straightforward way.

    A plain ``keras.Model`` (Keras' default train_step) with ``keras.layers.GRU`` loops,
    the dual FC as one einsum, the probability tree by gathers (layers.EinsumMDense,
    layers.GatherTreeToPdf) and ``keras.layers.GaussianNoise``: the same function as
    ``model`` (the tests check the loss), the way one would first write it in Keras 3.
    """
    from lpcnet.layers import (EinsumMDense, FastGaussianNoise, FusedGRU, GatherTreeToPdf, MDense,
                               TreeToPdf)

    def plain_layer(layer):
        config = layer.get_config()
        if isinstance(layer, FusedGRU):
            config.pop("fused")
            return keras.layers.GRU.from_config(config)
        for ours, straight in ((MDense, EinsumMDense), (TreeToPdf, GatherTreeToPdf),
                               (FastGaussianNoise, keras.layers.GaussianNoise)):
            if isinstance(layer, ours):
                return straight.from_config(config)
        return layer.__class__.from_config(config)

    plain = keras.models.clone_model(model, clone_function=plain_layer)
    plain = keras.Model(plain.inputs, plain.outputs, name="plain")
    for src, dst in zip(model.layers, plain.layers):
        dst.set_weights(src.get_weights())
    return plain


def bench_train(args=None, *, gru_a: int = 384, gru_b: int = 16, batch: int = 16, steps: int = 12,
                warmup: int = 2, rounds: int = 3, jit_compile: bool = False, features=None,
                data=None, variants=("ours_fp32", "keras_fit_fp32", "ours_amp_bf16")) -> dict:
    """Training throughput (sequences/s) on the real speech slice, one process, CPU or GPU.

    Variants, measured in the same process on the same batches: ``ours_fp32`` (LPCNetModel's
    explicit train_step: the trainer of ``lpcnet train``), ``keras_fit_fp32`` (the same layers as
    a plain functional ``keras.Model`` with Keras' default train_step), and ``ours_amp_bf16``
    (mixed_bfloat16); ``variants`` picks a subset. Each variant first runs ``warmup`` untimed steps (tracing); then the
    variants take turns for ``rounds`` rounds of ``steps / rounds`` timed steps, so that load from
    other processes affects all alike; throughput uses the median step time.

    ``args`` (from ``lpcnet bench``) may override gru_a, gru_b, batch, steps, warmup and
    jit_compile with attributes of the same names; its ``--repeat`` sets ``rounds``.
    """
    import tempfile

    import tensorflow as tf

    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer

    if args is not None:
        gru_a = getattr(args, "gru_a", None) or gru_a
        gru_b = getattr(args, "gru_b", None) or gru_b
        batch = getattr(args, "batch", None) or batch
        steps = getattr(args, "steps", None) or steps
        warmup = getattr(args, "warmup", None) or warmup
        jit_compile = bool(getattr(args, "jit_compile", jit_compile))
        rounds = getattr(args, "repeat", None) or rounds
    with tempfile.TemporaryDirectory() as tmp:
        if features is None:
            features, data = _bench_data(Path(tmp))
        loader = TrainingLoader(features, data, batch, seed=0)
        cfg = ModelConfig(gru_a=gru_a, gru_b=gru_b)
        models = {}
        for name, policy, plain in (("ours_fp32", None, False), ("keras_fit_fp32", None, True),
                                    ("ours_amp_bf16", "mixed_bfloat16", False)):
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
        # Interleave the variants in rounds so load from other processes hits all of them alike.
        times = {name: [] for name in models}
        per_round = max(1, steps // rounds)
        names = list(models)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:   # rotate who goes first
                times[name] += _fit_times(models[name], loader, per_round)
        results = {}
        for name, t in times.items():
            t = np.asarray(t)
            results[name] = {"seq_per_s": float(loader.batch_size / np.median(t)),
                             "s_per_step_median": float(np.median(t)), "s_per_step_mean": float(t.mean()),
                             "s_per_step_p90": float(np.percentile(t, 90)), "steps": int(len(t))}
    out = {"benchmark": "train", "gru_a": gru_a, "gru_b": gru_b, "batch": batch, "steps": steps,
           "warmup": warmup, "rounds": rounds, "jit_compile": jit_compile, "seq_len": 2400,
           "device": "GPU" if tf.config.list_physical_devices("GPU") else cpu_name(),
           "tf_version": tf.__version__, "keras_version": keras.__version__, "variants": results}
    print(f"train: GRU A {gru_a} / GRU B {gru_b}, batch {batch}, {steps} timed steps in {rounds} "
          f"interleaved rounds after {warmup} warm-up, jit {jit_compile}, {out['device']}")
    for name, r in results.items():
        print(f"  {name:15s} {r['seq_per_s']:7.2f} seq/s  median {r['s_per_step_median']:6.3f} s/step "
              f"(p90 {r['s_per_step_p90']:.3f})")
    ratios = {}
    for key, (num, den), target in (("ours_over_plain_fp32", ("ours_fp32", "keras_fit_fp32"), 1.5),
                                    ("amp_bf16_over_fp32", ("ours_amp_bf16", "ours_fp32"), 1.3)):
        if num in results and den in results:
            ratios[key] = results[num]["seq_per_s"] / results[den]["seq_per_s"]
            print(f"  {num} / {den}: {ratios[key]:.2f}x (issue 5 target >= {target}x)")
    out["ratios"] = ratios
    return out


# --- multi-process scaling: table and figure (notebook 04, ``lpcnet bench scaling``) -----------
def bench_scaling(args=None, *, gru_a: int = 64, gru_b: int = 16, batch: int = 8, steps: int = 20,
                  nps=(1, 2), threads: int = 1, timeout: float = 600, features=None, data=None,
                  out=None) -> dict:
    """Horovod weak scaling on the CPU: sequences/s for each process count in ``nps``.

    Each run is ``lpcnet train`` on the real speech slice through
    :func:`lpcnet.distributed.launch` (``horovodrun --gloo`` for np > 1) with ``batch``
    sequences per rank, ``threads`` intra-op thread(s) per rank, one epoch of ``steps`` steps,
    noise and sparsification as in training; throughput is the seed's rule (mean of the last
    40 steps, or of the second half). Prints one JSON line per run and the efficiency
    (throughput / (np x throughput at the smallest np); 0.9 or more is the target).
    """
    import tempfile

    from lpcnet import distributed as D

    if args is not None:
        gru_a = getattr(args, "gru_a", None) or gru_a
        gru_b = getattr(args, "gru_b", None) or gru_b
        batch = getattr(args, "batch", None) or batch
        steps = getattr(args, "steps", None) or steps
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if features is None:
            features, data = _bench_data(tmp)
        for n in nps:
            train_args = ["--features", str(features), "--data", str(data),
                          "--model_dir", str(tmp / f"np{n}"), "--output", "bench",
                          "--grua-size", str(gru_a), "--grub-size", str(gru_b),
                          "--batch_size", str(batch), "--epochs", "1", "--steps_per_epoch", str(steps),
                          "--seed", "0", "--use_performance", "True", "--no-progress"]
            log = open(tmp / f"np{n}.log", "w")
            try:
                s = D.launch(n, train_args, threads=threads, timeout=timeout, out=log, cwd=tmp)
            finally:
                log.close()
            summaries.append(s)
            line = {"benchmark": "scaling", "processes": n, "threads_per_rank": threads,
                    "batch_per_rank": batch, **s["overall_stats"]}
            print(json.dumps(line), file=out, flush=True)
    from lpcnet.throughput import scaling_rows

    rows = scaling_rows(summaries)
    result = {"benchmark": "scaling", "gru_a": gru_a, "gru_b": gru_b, "batch_per_rank": batch,
              "steps": steps, "threads_per_rank": threads, "cpu": cpu_name(), "rows": rows,
              "efficiency": rows[-1]["efficiency"] if rows else float("nan"),
              "loss_per_step": {r["processes"]: s["metadata"].get("loss_per_step", [])
                                for r, s in zip(rows, sorted(summaries, key=lambda x: x["metadata"]["world_size"]))}}
    print(f"scaling: GRU A {gru_a} / GRU B {gru_b}, batch {batch} per rank, {steps} steps, "
          f"{threads} intra-op thread(s) per rank, {result['cpu']}", file=out)
    for r in rows:
        print(f"  np={r['processes']}  global batch {r['global_batch']:3d}  {r['seq_per_s']:7.2f} seq/s  "
              f"{r['s_per_step']:.3f} s/step  efficiency {r['efficiency']:.2f}", file=out)
    print(f"  efficiency at np={rows[-1]['processes']}: {result['efficiency']:.2f} of linear "
          f"(target >= 0.90)", file=out, flush=True)
    return result
