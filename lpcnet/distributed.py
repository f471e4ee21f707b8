"""Horovod data parallelism: rank helpers, collectives, and a subprocess launcher.

Horovod is imported lazily: single-process training, notebooks and CPU CI never
need it. After :func:`init`, ``rank()``/``size()``/``local_rank()`` report the
Horovod world; without it they return ``(0, 1, 0)``.

Collectives use ``horovod.tensorflow`` directly (``grouped_allreduce`` of the
gradients inside the train step, ``broadcast`` of variable values), which works
with Keras 3 variables; ``DistributedGradientTape`` does not (horovod#4290).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from lpcnet.errors import LpcnetError

_hvd = None  # horovod.tensorflow once init() ran


def horovod_available() -> bool:
    """True when Horovod with TensorFlow support imports."""
    try:
        import horovod.tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def init():
    """``hvd.init()`` once; returns the ``horovod.tensorflow`` module.

    Pins one GPU per local rank when GPUs are visible (memory growth on).
    Raises LpcnetError when Horovod is not installed.
    """
    global _hvd
    if _hvd is not None:
        return _hvd
    try:
        import horovod.tensorflow as hvd
    except ImportError as exc:
        raise LpcnetError(f"--use_horovod needs Horovod with TensorFlow support ({exc}); "
                          "run `bash run_scripts/setup.sh` to build it") from None
    hvd.init()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
    _hvd = hvd
    return hvd


def active() -> bool:
    """True after :func:`init` in a Horovod run."""
    return _hvd is not None


def rank() -> int:
    return _hvd.rank() if _hvd else 0


def size() -> int:
    return _hvd.size() if _hvd else 1


def local_rank() -> int:
    return _hvd.local_rank() if _hvd else 0


def is_chief() -> bool:
    """Rank 0 alone writes files, logs and progress."""
    return rank() == 0


def allreduce_gradients(grads):
    """Average a list of gradient tensors across ranks (identity on one process)."""
    if not _hvd or _hvd.size() == 1:
        return grads
    return _hvd.grouped_allreduce(list(grads), op=_hvd.Average)


def average(value, name: str | None = None):
    """Average a scalar/tensor across ranks (for logged metrics)."""
    if not _hvd or _hvd.size() == 1:
        return value
    return _hvd.allreduce(value, op=_hvd.Average, name=name)


def broadcast_variables(variables, root_rank: int = 0) -> None:
    """Give every rank rank-0's values of ``variables`` (Keras 3 or tf variables)."""
    if not _hvd or _hvd.size() == 1:
        return
    for v in variables:
        v.assign(_hvd.broadcast(v.value if hasattr(v, "value") else v, root_rank))


def broadcast_object(obj, root_rank: int = 0):
    """Pickle-broadcast a small Python object from rank 0 (e.g. a resume epoch)."""
    if not _hvd or _hvd.size() == 1:
        return obj
    return _hvd.broadcast_object(obj, root_rank)


# --- launching ---------------------------------------------------------------
_RANK_PREFIX = re.compile(r"^\[(\d+)\]<(stdout|stderr)>:(.*)$")


def threads_per_rank(np_: int, cores: int | None = None) -> int:
    """Intra-op threads per rank so that ``np_`` ranks do not oversubscribe the cores."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, np_))


def train_command(np_: int, train_args, hosts: str | None = None, hostfile: str | None = None,
                  python: str = sys.executable) -> list[str]:
    """The command line that trains with ``np_`` processes.

    ``np_ == 1`` without hosts: plain ``python -m lpcnet.train``. Otherwise
    ``horovodrun -np N --gloo -H hosts|--hostfile FILE python -m lpcnet.train ... --use_horovod True``;
    host lists and hostfiles are passed to Horovod untouched (multi-node is Horovod's job).
    """
    train = [python, "-m", "lpcnet.train", *map(str, train_args)]
    if np_ < 1:
        raise LpcnetError(f"number of processes must be >= 1, got {np_}")
    if np_ == 1 and not hosts and not hostfile:
        return train
    horovodrun = shutil.which("horovodrun", path=str(Path(python).parent)) or shutil.which("horovodrun")
    if not horovodrun:
        raise LpcnetError("horovodrun not found (Horovod is not installed in this environment)")
    cmd = [horovodrun, "-np", str(np_), "--gloo"]
    if hostfile:
        cmd += ["--hostfile", str(hostfile)]
    else:
        cmd += ["-H", hosts or f"localhost:{np_}"]
    if "--use_horovod" not in train:
        train += ["--use_horovod", "True"]
    return cmd + train


def _arg_value(args, flag: str, default=None):
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def launch(np_: int, train_args, *, hosts: str | None = None, hostfile: str | None = None,
           timeout: float = 3600, out=None, threads: int | None = None, env: dict | None = None,
           log_file=None) -> dict:
    """Run a training with ``np_`` processes in a subprocess; return its throughput JSON.

    Rank 0's output is streamed live to ``out`` (default ``sys.stdout``, so it shows in a
    notebook or terminal) with the ``[0]<stdout>:`` prefixes stripped; other ranks stay
    quiet unless the run fails, in which case their last lines are shown. The whole process
    group is killed after ``timeout`` seconds. Each rank gets ``threads`` intra-op threads
    (default: cores // np_).

    Returns the parsed ``<model_dir>/summary/summary.json`` (pass ``--use_performance True``),
    or ``{}`` if the run wrote none. Raises LpcnetError on failure or timeout.
    """
    out = out or sys.stdout
    cmd = train_command(np_, train_args, hosts, hostfile)
    threads = threads or threads_per_rank(np_)
    run_env = {**os.environ, **(env or {}),
               "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
               "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    tails: dict[int, deque] = {}
    log = open(log_file, "w") if log_file else None
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=run_env, start_new_session=True, bufsize=1)

    def pump():
        for line in proc.stdout:
            if log:
                log.write(line)
            m = _RANK_PREFIX.match(line.rstrip("\n"))
            r, text = (int(m.group(1)), m.group(3)) if m else (0, line.rstrip("\n"))
            tails.setdefault(r, deque(maxlen=20)).append(text)
            if r == 0:
                print(text, file=out, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise LpcnetError(f"training with np={np_} timed out after {timeout:.0f} s and was stopped") from None
    finally:
        reader.join(timeout=10)
        if log:
            log.close()
    if rc != 0:
        for r in sorted(tails):
            if r != 0:
                print(f"--- last lines of rank {r} ---", file=out)
                print("\n".join(tails[r]), file=out, flush=True)
        last = next((t for r in sorted(tails) for t in reversed(tails[r]) if "rror" in t), "")
        raise LpcnetError(f"training with np={np_} failed (exit {rc}) after "
                          f"{time.monotonic() - t0:.0f} s" + (f": {last.strip()}" if last else ""))
    model_dir = _arg_value(train_args, "--model_dir", ".")
    summary = Path(model_dir) / "summary" / "summary.json"
    return json.loads(summary.read_text()) if summary.exists() else {}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
