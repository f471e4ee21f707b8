"""Horovod data parallelism inside the ranks: rank helpers, collectives, the same flags (docs/distributed.md).

Horovod is imported lazily: single-process training, notebooks and CPU CI never
need it. After :func:`init`, ``rank()``/``size()``/``local_rank()`` report the
Horovod world; without it they return ``(0, 1, 0)``.

Collectives use ``horovod.tensorflow`` directly (``grouped_allreduce`` of the
gradients inside the train step, ``broadcast`` of variable values), which works
with Keras 3 variables; ``DistributedGradientTape`` does not (horovod#4290).

The launcher that starts the ranks (``launch``, ``Elastic``, ``train_command``, ...) lives in
:mod:`lpcnet.launcher`; its public names are also reachable from here
(``distributed.launch``), where notebooks and scripts have always found them.
"""

from __future__ import annotations

import os
from pathlib import Path

from lpcnet.errors import LpcnetError
# The launcher's public names, where notebooks and scripts find them (distributed.launch, ...).
from lpcnet.launcher import (DISCOVERY_SCRIPT, PIN_ENV, Elastic, launch, local_host_names,  # noqa: F401
                             rank_environment, threads_per_rank, train_command, write_hosts_file)

_hvd = None  # horovod.tensorflow once init() ran
#: Scale of this rank's gradients and metrics before the average (elastic runs with uneven
#: shares of the global batch set it; 1.0 otherwise). Read when the train step is traced.
_share_scale = 1.0


def horovod_available() -> bool:
    """True when Horovod with TensorFlow support imports."""
    try:
        import horovod.tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def horovod_wakes_on_enqueue() -> bool:
    """True when the installed Horovod has the kit's wake-on-enqueue patch (third_party/horovod/)."""
    try:
        from horovod.tensorflow import mpi_ops
        return mpi_ops._basics.MPI_LIB_CTYPES.horovod_wake_on_enqueue_built() == 1
    except (ImportError, AttributeError):
        return False


def import_horovod():
    """``horovod.tensorflow``, or LpcnetError saying how to build it."""
    try:
        import horovod.tensorflow as hvd
    except ImportError as exc:
        raise LpcnetError(f"--use_horovod needs Horovod with TensorFlow support ({exc}); "
                          "run `bash run_scripts/setup.sh` to build it") from None
    return hvd


def init(pin_gpu: bool = True):
    """``hvd.init()`` once; returns the ``horovod.tensorflow`` module.

    With ``pin_gpu`` and GPUs visible, each process sees only the GPU of its local
    rank (memory growth on); with ``pin_gpu=False`` GPUs are hidden (CPU training).
    With ``LPCNET_PIN_CORES=1`` in the environment (``launch(pin=True)``, ``lpcnet launch
    --pin-cores``) the process pins itself to its share of the CPU cores (:func:`pin_to_cores`).
    Raises LpcnetError when Horovod is not installed.
    """
    global _hvd
    if _hvd is not None:
        return _hvd
    hvd = import_horovod()
    hvd.init()
    if os.environ.get(PIN_ENV) == "1":
        pin_to_cores(hvd.local_rank(), hvd.local_size())
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            if pin_gpu:
                for gpu in gpus:
                    tf.config.experimental.set_memory_growth(gpu, True)
                tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
            else:
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass  # TensorFlow already initialised in this process
    _hvd = hvd
    return hvd


def reinit() -> None:
    """``hvd.shutdown(); hvd.init()`` after an elastic reset (new world, maybe a new rank)."""
    _hvd.shutdown()
    _hvd.init()
    if os.environ.get(PIN_ENV) == "1":
        pin_to_cores(_hvd.local_rank(), _hvd.local_size())


def pin_to_cores(local_rank: int, local_size: int, cores=None) -> set | None:
    """Pin this process (all its threads) to core share ``local_rank`` of ``local_size``.

    The allowed cores (``os.sched_getaffinity``; ``cores`` in tests) are split into
    ``local_size`` contiguous, equal shares; returns the share, or None when there are
    fewer cores than ranks (nothing pinned). Two compute-bound ranks on two cores then
    never migrate or share a core (docs/distributed.md, Threads and cores).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(cores if cores is not None else os.sched_getaffinity(0))
    if local_size < 1 or len(allowed) < local_size or not 0 <= local_rank < local_size:
        return None
    per = len(allowed) // local_size
    share = set(allowed[local_rank * per:(local_rank + 1) * per])
    if cores is None:
        os.sched_setaffinity(0, share)
        for task in Path("/proc/self/task").glob("[0-9]*"):     # threads started before the call
            try:
                os.sched_setaffinity(int(task.name), share)
            except OSError:
                pass
    return share


def rank() -> int:
    return _hvd.rank() if _hvd else 0


def size() -> int:
    return _hvd.size() if _hvd else 1


def local_rank() -> int:
    return _hvd.local_rank() if _hvd else 0


def set_share_scale(scale: float) -> None:
    """Weight of this rank's gradients/metrics in the average: ``world * share / global_batch``.

    Averaging ``scale_k * g_k`` over ranks gives ``sum_k share_k g_k / global_batch``, the
    gradient of the whole global batch, also when the shares differ (elastic runs). Takes
    effect when the train step is next traced.
    """
    global _share_scale
    _share_scale = float(scale)


def _weighted(tensors):
    import tensorflow as tf

    if _share_scale == 1.0:
        return tensors
    return [t * tf.cast(_share_scale, t.dtype) for t in tensors]


def _flat_average(tensors, name: str) -> list:
    """Average same-dtype tensors across ranks as ONE flat tensor (one Horovod op, one message).

    A ``grouped_allreduce`` of N tensors is N ops that Horovod's background thread negotiates
    and copies into and out of its fusion buffer each step; concatenating them first leaves one
    op (docs/benchmarks.md#scaling: the per-step CPU overhead of np=2).
    """
    import tensorflow as tf

    shapes = [tf.shape(t) for t in tensors]
    sizes = [tf.size(t) for t in tensors]
    flat = _hvd.allreduce(tf.concat([tf.reshape(t, [-1]) for t in tensors], 0), op=_hvd.Average,
                          name=name)
    return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat, sizes), shapes)]


def allreduce_gradients(grads):
    """Average a list of gradient tensors across ranks (identity on one process).

    One ``grouped_allreduce`` (Horovod fuses it into few messages); sparse
    ``IndexedSlices`` (embedding gradients) are densified first, like the seed's
    ``sparse_as_dense=True``. ``None`` gradients pass through. Call it inside the
    compiled train step (``LPCNetModel.gradient_reducer``). Elastic runs keep the
    collective even at world size 1 (the world can grow without a retrace).
    """
    if not _hvd or (_hvd.size() == 1 and not _elastic()):
        return grads
    import tensorflow as tf

    grads = list(grads)
    idx = [i for i, g in enumerate(grads) if g is not None]
    dense = _weighted([tf.convert_to_tensor(grads[i]) for i in idx])
    reduced = _hvd.grouped_allreduce(dense, op=_hvd.Average, name="lpcnet_grads")
    out = list(grads)
    for i, r in zip(idx, reduced):
        out[i] = r
    return out


def reduce_step(grads, logs: dict) -> tuple:
    """Gradients and the step's logged metrics averaged across ranks in one ``grouped_allreduce``.

    ``LPCNetModel.step_reducer``: one collective per train step (one negotiation cycle of
    Horovod's background thread and one wait for the slowest rank) instead of one for the
    gradients and one for the metrics, on one flat tensor (:func:`_flat_average`). Same results as :func:`allreduce_gradients` and
    :func:`average_logs`. Falls back to the two when the dtypes differ.
    """
    if not _hvd or (_hvd.size() == 1 and not _elastic()):
        return grads, logs
    import tensorflow as tf

    grads = list(grads)
    idx = [i for i, g in enumerate(grads) if g is not None]
    dense = [tf.convert_to_tensor(grads[i]) for i in idx]
    keys = sorted(logs)
    if len({t.dtype for t in dense} | {tf.float32}) > 1:
        return allreduce_gradients(grads), average_logs(logs)
    vals = [tf.cast(tf.convert_to_tensor(logs[k]), tf.float32) for k in keys]
    reduced = _flat_average(_weighted(dense + vals), name="lpcnet_step")
    out = list(grads)
    for i, r in zip(idx, reduced):
        out[i] = r
    return out, dict(zip(keys, reduced[len(dense):]))


def average_logs(logs: dict) -> dict:
    """Average the scalar metrics of a train step (loss, accuracy) across ranks.

    Each rank's value is its running mean over its batches, so the (share-weighted)
    average is the running mean over all ranks' sequences. Used as
    ``LPCNetModel.metrics_reducer`` inside the compiled step and at epoch end.
    """
    if not _hvd or (_hvd.size() == 1 and not _elastic()) or not logs:
        return logs
    import tensorflow as tf

    keys = sorted(logs)
    vals = _weighted([tf.cast(tf.convert_to_tensor(logs[k]), tf.float32) for k in keys])
    reduced = _hvd.grouped_allreduce(vals, op=_hvd.Average, name="lpcnet_metrics")
    return dict(zip(keys, reduced))


def _elastic() -> bool:
    return os.environ.get("HOROVOD_ELASTIC") == "1"


def broadcast_variables(variables, root_rank: int = 0) -> None:
    """Give every rank rank-0's values of ``variables`` (Keras 3 or tf variables).

    Call it eagerly (outside ``fit``) on the same list, in the same order, on every rank:
    model weights, then the optimizer's variables once built (``optimizer.build``).
    """
    if not _hvd or _hvd.size() == 1:
        return
    for i, v in enumerate(variables):
        value = v.value if hasattr(v, "value") else v
        v.assign(_hvd.broadcast(value, root_rank, name=f"lpcnet_bcast_{i}"))


def broadcast_object(obj, root_rank: int = 0):
    """Pickle-broadcast a small Python object from rank 0 (e.g. a resume epoch)."""
    if not _hvd or _hvd.size() == 1:
        return obj
    return _hvd.broadcast_object(obj, root_rank)


def allgather_object(obj) -> list:
    """Every rank's ``obj`` (small, picklable), in rank order."""
    if not _hvd or _hvd.size() == 1:
        return [obj]
    return list(_hvd.allgather_object(obj))


# --- the same flags on every rank -------------------------------------------------------
def flag_differences(per_rank: list) -> list[str]:
    """``["lr: rank 0 0.001, rank 1 0.002", ...]`` for each key whose value differs between ranks.

    ``per_rank``: one ``{flag name: value}`` dict per rank, in rank order.
    """
    out = []
    for key in sorted(set().union(*per_rank)):
        values = [d.get(key) for d in per_rank]
        if any(v != values[0] for v in values[1:]):
            groups: dict = {}
            for r, v in enumerate(values):
                groups.setdefault(repr(v), []).append(r)
            shown = "; ".join(f"rank{'s' if len(rs) > 1 else ''} {','.join(map(str, rs))}: {v}"
                              for v, rs in groups.items())
            out.append(f"{key} ({shown})")
    return out


def flag_values(*configs) -> dict:
    """``{"--lr": 0.001, ...}``: the command-line settings held by config dataclasses (lpcnet.config)."""
    import dataclasses

    out = {}
    for cfg in configs:
        for f in dataclasses.fields(cfg):
            meta = f.metadata.get("flag")
            if meta is not None:
                out[(meta["names"] or (f"--{f.name}",))[0]] = getattr(cfg, f.name)
    return out


def check_same_flags(flags: dict) -> None:
    """Refuse a run whose ranks were started with different flags (one collective).

    Every rank passes its own parsed settings (before rank 0 resolves the seed or the
    resume point); when any differ, every rank raises the same LpcnetError naming them,
    instead of silently continuing with rank 0's values.
    """
    diffs = flag_differences(allgather_object(flags))
    if diffs:
        raise LpcnetError("the ranks were started with different flags, which Horovod training "
                          "does not allow: " + "; ".join(diffs) + " (start every rank with the "
                          "same command line)")
