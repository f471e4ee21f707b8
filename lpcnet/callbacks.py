"""Everything ``model.fit`` is handed by ``lpcnet train`` (docs/training.md).

* :class:`StepTimer`, :func:`write_performance_summary`: per-step wall times and the
  seed-compatible throughput JSON of ``--use_performance``;
* :class:`Progress`: the tqdm bar; :class:`TensorBoardLogger`: ``--enable_tensorboard``;
* :class:`AtomicCheckpoint`: the full model after every epoch, written atomically;
* :class:`StopOnNonFinite`: a NaN/Inf loss or weight stops training with one error;
* :class:`Sparsify`, :class:`SparsifyGRUB`: block sparsification of the GRU weights on
  their schedule (the NumPy part is :mod:`lpcnet.sparsity`);
* :func:`callbacks_factory`: extra callbacks from ``--callbacks-module``.

* :class:`QualityCallback`: ``--eval-audio``: held-out speech scored beside training
  (the scoring process is :mod:`lpcnet.train_eval`).
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from pathlib import Path

import keras
import numpy as np

from lpcnet.errors import LpcnetError
from lpcnet.sparsity import block_density, quantize_weights, schedule_density, sparsify_gates, split_gates


# --- step timing and the throughput JSON ------------------------------------------------------
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
    """Mean step time by the seed's rule (docs/training.md, Throughput JSON), in seconds.

    Steps 10..299 when exactly 300 were timed, else the last 40 (of the second half when
    40 or fewer).
    """
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


# --- progress and TensorBoard -------------------------------------------------------------------
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
    """TensorBoard scalars: loss, accuracy (and the end-to-end model's metrics), learning rate,
    sequences/s, per-gate density.

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

        from lpcnet.end2end import METRICS
        from lpcnet.model import current_lr

        with self.writer.as_default(step=int(step)):
            for k in ("loss", *METRICS):        # METRICS: accuracy, and the end-to-end model's
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


# --- checkpoints --------------------------------------------------------------------------------
class AtomicCheckpoint(keras.callbacks.Callback):
    """Save the full model (weights + optimizer state) after every epoch, atomically.

    ``path_for(epoch)`` gets the 1-based number of finished epochs (the seed's
    ``{epoch:02d}``). Written by :func:`lpcnet.formats.atomic_path`: a locked hidden temp
    file, fsynced, renamed over the checkpoint, folder fsynced; a crash mid-write leaves
    the previous checkpoints intact and a temp file the next run removes.
    """

    def __init__(self, path_for, ext: str = ".keras"):
        super().__init__()
        self.path_for, self.ext = path_for, ext
        self.last = None

    def on_epoch_end(self, epoch, logs=None):
        from lpcnet.formats import atomic_path

        path = Path(self.path_for(epoch + 1))
        with atomic_path(path) as tmp:       # the temp keeps the suffix Keras needs
            self.model.save(tmp)
        self.last = path


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop training with one LpcnetError at the first non-finite loss or weight.

    After every step: the logged loss (the running mean turns NaN with the first bad step) and
    the sum of all float weights (one compiled reduction: NaN or Inf when any weight is; a NaN
    weight need not show in the loss, which clips probabilities). At every epoch end every
    weight is checked. Place this callback before the checkpoint callback, so that no
    checkpoint of a diverged model is written. The error names the step, the first bad
    weight and the last good checkpoint (``last_checkpoint()``: a path or None).
    """

    def __init__(self, last_checkpoint):
        super().__init__()
        self.last_checkpoint = last_checkpoint
        self.epoch = 0
        self._weights_sum = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        floats = [v for v in self.model.weights if "float" in str(v.dtype)]
        self._weights_sum = tf.function(
            lambda: tf.add_n([tf.reduce_sum(tf.cast(v.value, tf.float32)) for v in floats]))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self._stop(f"the loss is {float(loss)}")
        if self._weights_sum is not None and not np.isfinite(float(self._weights_sum())):
            self._stop(self._first_bad_weight() or "the weights hold NaN/Inf")

    def on_epoch_end(self, epoch, logs=None):
        bad = self._first_bad_weight()
        if bad:
            self._stop(bad)

    def _first_bad_weight(self) -> str | None:
        for w in self.model.weights:
            value = keras.ops.convert_to_numpy(w)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                return f"weight {w.path} holds {int(np.count_nonzero(~np.isfinite(value)))} NaN/Inf value(s)"
        return None

    def _stop(self, what: str):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        last = self.last_checkpoint()
        kept = (f"the last good checkpoint is {last}" if last
                else "no checkpoint of this run was written")
        raise LpcnetError(f"training diverged at step {step} (epoch {self.epoch + 1}): {what}; "
                          f"stopped without saving it, {kept} (lower --lr, or check the data)")


# --- block sparsification of the GRU weights (docs/training.md, Sparsification) ----------------
def gate_matrices(layer, which: str, rows: int | None = None) -> list:
    """The per-gate (z, r, h) (input, output) blocks of a GRU weight, as NumPy.

    ``which``: ``"recurrent"`` (recurrent kernel) or ``"kernel"`` (input kernel);
    ``rows``: only the first ``rows`` input rows.
    """
    var = layer.cell.recurrent_kernel if which == "recurrent" else layer.cell.kernel
    w = keras.ops.convert_to_numpy(var)
    return split_gates(w if rows is None else w[:rows], layer.cell.units)


class _Sparsifier(keras.callbacks.Callback):
    """Block-sparsify one GRU weight per gate on the schedule shared by Sparsify / SparsifyGRUB.

    The counter ``t`` is the number of finished batches of the whole run: it starts from
    ``optimizer.iterations`` (so a resumed run continues the schedule) and is incremented
    before each test (the first batch has t = 1). It acts when ``t > t_start`` and
    ``t - t_start`` is a multiple of ``interval``, at every batch from ``t_end`` on, and at
    every batch in quantise mode. Subclasses name the layer, the weight (``which``), its
    rows and whether the gates' diagonals are kept.
    """

    which = "recurrent"
    keep_diagonal = True

    def __init__(self, t_start, t_end, interval, density, quantize: bool = False,
                 layer_name: str = "", rows: int | None = None):
        super().__init__()
        self.t_start, self.t_end, self.interval = int(t_start), int(t_end), max(1, int(interval))
        self.density = tuple(float(d) for d in density)
        self.quantize = bool(quantize)
        self.layer_name, self.rows = layer_name, rows
        self.t = 0

    def on_train_begin(self, logs=None):
        self.t = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _on_schedule(self, t: int) -> bool:
        return (t > self.t_start and (t - self.t_start) % self.interval == 0) or t >= self.t_end

    def _quant_threshold(self, t: int):
        """Snapping threshold (units of 1/128) at batch ``t``, None when not snapping."""
        if not (self.quantize and self._on_schedule(t)):
            return None
        return 0.5 if t >= self.t_end else 0.5 * (t - self.t_start) / (self.t_end - self.t_start)

    def on_train_batch_end(self, batch, logs=None):
        self.t += 1
        if self.quantize or self._on_schedule(self.t):
            self.apply(self.t)

    def _variable(self):
        cell = self.model.get_layer(self.layer_name).cell
        return cell.recurrent_kernel if self.which == "recurrent" else cell.kernel

    def apply(self, t: int) -> None:
        """Prune each gate to its density at batch ``t``; in quantise mode snap the whole weight."""
        var = self._variable()
        units = self.model.get_layer(self.layer_name).cell.units
        densities = [schedule_density(t, self.t_start, self.t_end, d, self.quantize)
                     for d in self.density]
        w = sparsify_gates(keras.ops.convert_to_numpy(var), units, densities,
                           keep_diagonal=self.keep_diagonal, rows=self.rows)
        threshold = self._quant_threshold(t)
        if threshold is not None:
            w = quantize_weights(w, threshold)
        var.assign(w)

    def densities(self) -> list:
        """Fraction of non-zero 4x8 blocks per gate (z, r, h), diagonal excluded if kept."""
        gates = gate_matrices(self.model.get_layer(self.layer_name), self.which, self.rows)
        return [block_density(a, self.keep_diagonal) for a in gates]


class Sparsify(_Sparsifier):
    """Block-sparsify GRU A's recurrent kernel per gate, diagonal kept.

    Args:
        t_start, t_end, interval: schedule in batches (2000, 40000, 400 from scratch).
        density: final (z, r, h) densities, e.g. (0.05, 0.05, 0.2).
        quantize: quantisation-aware mode (act every batch; snap weights to 1/128).
        layer_name: the GRU layer ("gru_a").
    """

    def __init__(self, t_start, t_end, interval, density, quantize=False, layer_name="gru_a"):
        super().__init__(t_start, t_end, interval, density, quantize, layer_name)


class SparsifyGRUB(_Sparsifier):
    """Block-sparsify the GRU-A rows of GRU B's input kernel per gate, no diagonal handling.

    Only rows ``0 .. grua_units - 1`` (the GRU A input) are masked; the conditioning rows
    are untouched. Quantise mode snaps the whole kernel.

    Args:
        t_start, t_end, interval, density, quantize: as :class:`Sparsify`
            (default density (1, 1, 1): nothing pruned).
        grua_units: rows of the kernel fed by GRU A.
        layer_name: the GRU layer ("gru_b").
    """

    which = "kernel"
    keep_diagonal = False

    def __init__(self, t_start, t_end, interval, density, grua_units: int, quantize=False,
                 layer_name="gru_b"):
        super().__init__(t_start, t_end, interval, density, quantize, layer_name, int(grua_units))
        self.grua_units = int(grua_units)


# --- extra callbacks from a module (``--callbacks-module``) -------------------------------------
def callbacks_factory(name: str):
    """The function ``callbacks(rank, world) -> list`` of module ``name`` (imported here).

    For callbacks a run needs beyond the kit's (custom logging, or the fault injection of
    tests/train_hooks.py), also in ``horovodrun`` ranks, where only flags reach the code.
    Raises LpcnetError when the module cannot be imported or has no such function.
    """
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise LpcnetError(f"--callbacks-module {name}: cannot import it ({exc})") from None
    make = getattr(module, "callbacks", None)
    if not callable(make):
        raise LpcnetError(f"--callbacks-module {name}: the module has no function "
                          f"callbacks(rank, world)")
    return make


# --- training-time quality evaluation -----------------------------------------------------------
class QualityCallback(keras.callbacks.Callback):
    """``--eval-audio``: hand the weights to a scoring process every ``every`` steps and at epoch ends.

    The scoring process (:class:`lpcnet.train_eval.QualityTracker`) copy-synthesises the
    held-out files with the native engine and writes ``<model_dir>/eval/quality.{jsonl,csv}``,
    audio, and TensorBoard scalars. Training never waits: an evaluation due while the last one
    is still being scored is skipped. At the end of training the weights reached are scored
    (waiting for the scorer), and one line reports evaluations, skips and the training-side cost.
    """

    def __init__(self, files, model_dir, model_cfg, global_batch: int, every: int = 0,
                 use_dnsmos: bool = True, tensorboard: bool = True):
        super().__init__()
        self.files, self.model_dir, self.model_cfg = list(files), Path(model_dir), model_cfg
        self.global_batch, self.every = int(global_batch), max(0, int(every))
        self.use_dnsmos, self.tensorboard = use_dnsmos, tensorboard
        self.tracker = None
        self.last_step = -1
        self._t0 = 0.0

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _submit(self, epoch=None) -> bool:
        from lpcnet.model import model_weights

        step = self._step()
        if step == self.last_step:
            return False
        t0 = time.perf_counter()
        weights = model_weights(self.model)
        self.tracker.callback_s += time.perf_counter() - t0
        ok = self.tracker.submit(weights, self.model_cfg, step=step,
                                 sequences=step * self.global_batch, epoch=epoch)
        if ok:
            self.last_step = step
        return ok

    def on_train_begin(self, logs=None):
        from lpcnet.train_eval import QualityTracker

        self.tracker = QualityTracker(self.files, self.model_dir, use_dnsmos=self.use_dnsmos,
                                      tensorboard=self.tensorboard)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.every and self._step() % self.every == 0:
            self._submit()

    def on_epoch_end(self, epoch, logs=None):
        self._submit(epoch + 1)

    def on_train_end(self, logs=None):
        if self.tracker is None:
            return
        train_s = time.perf_counter() - self._t0
        self.tracker.drain()
        self._submit()                       # the weights training ended with, if not yet scored
        self.tracker.close()
        print(self.tracker.report(train_s), flush=True)
