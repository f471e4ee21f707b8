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


def init(pin_gpu: bool = True):
    """``hvd.init()`` once; returns the ``horovod.tensorflow`` module.

    With ``pin_gpu`` and GPUs visible, each process sees only the GPU of its local
    rank (memory growth on); with ``pin_gpu=False`` GPUs are hidden (CPU training).
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


def rank() -> int:
    return _hvd.rank() if _hvd else 0


def size() -> int:
    return _hvd.size() if _hvd else 1


def local_rank() -> int:
    return _hvd.local_rank() if _hvd else 0


def allreduce_gradients(grads):
    """Average a list of gradient tensors across ranks (identity on one process).

    One ``grouped_allreduce`` (Horovod fuses it into few messages); sparse
    ``IndexedSlices`` (embedding gradients) are densified first, like the seed's
    ``sparse_as_dense=True``. ``None`` gradients pass through. Call it inside the
    compiled train step (``LPCNetModel.gradient_reducer``).
    """
    if not _hvd or _hvd.size() == 1:
        return grads
    import tensorflow as tf

    grads = list(grads)
    idx = [i for i, g in enumerate(grads) if g is not None]
    dense = [tf.convert_to_tensor(grads[i]) for i in idx]
    reduced = _hvd.grouped_allreduce(dense, op=_hvd.Average, name="lpcnet_grads")
    out = list(grads)
    for i, r in zip(idx, reduced):
        out[i] = r
    return out


def average_logs(logs: dict) -> dict:
    """Average the scalar metrics of a train step (loss, accuracy) across ranks.

    Each rank's value is its running mean over equal-sized batches, so the average
    is the running mean over all ranks' sequences. Used as
    ``LPCNetModel.metrics_reducer`` inside the compiled step.
    """
    if not _hvd or _hvd.size() == 1 or not logs:
        return logs
    import tensorflow as tf

    keys = sorted(logs)
    vals = [tf.cast(tf.convert_to_tensor(logs[k]), tf.float32) for k in keys]
    reduced = _hvd.grouped_allreduce(vals, op=_hvd.Average, name="lpcnet_metrics")
    return dict(zip(keys, reduced))


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
    # Drop any --use_horovod the caller passed (e.g. "False" from a one-process command line).
    keep, skip = [], False
    for a in train:
        if skip:
            skip = False
            continue
        if a == "--use_horovod":
            skip = True
            continue
        if not a.startswith("--use_horovod="):
            keep.append(a)
    return cmd + keep + ["--use_horovod", "True"]


def _arg_value(args, flag: str, default=None):
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


#: horovodrun's lines when a rank failed (gloo launcher) and Horovod's message on the survivors.
_PROC_EXIT = re.compile(r"^Process (\d+) exit with status code (-?\d+)")
_FAILURE_HINTS = ("Horovod has been shut down", "Terminating remaining workers",
                  "HorovodInternalError", "Connection closed by peer")
_ERROR_LINE = re.compile(r"^\s*((?:[\w.]+(?:Error|Exception)|KeyboardInterrupt)\b.*|.*: error: .*)$")


class _RankOutput:
    """Reads the launched run's output: rank 0's lines to ``out``, every rank's tail, failure signs."""

    def __init__(self, out, log, plain: bool):
        self.out, self.log, self.plain = out, log, plain   # plain: np=1, no horovodrun prefixes
        self.tails: dict[int, deque] = {}
        self.errors: dict[int, str] = {}            # rank -> last error-looking line
        self.exits: list[tuple[int, int]] = []      # (rank, status) of ranks that exited non-zero
        self.failed_at: list[float] = []            # monotonic time of each failure sign

    def feed(self, line: str) -> None:
        if self.log:
            self.log.write(line)
            self.log.flush()
        text = line.rstrip("\n")
        m = _RANK_PREFIX.match(text)
        if m:
            r, text = int(m.group(1)), m.group(3)
        else:
            r = 0 if self.plain else -1          # -1: horovodrun's own messages
        self.tails.setdefault(r, deque(maxlen=20)).append(text)
        if _ERROR_LINE.match(text):
            self.errors[r] = text.strip()
        pm = _PROC_EXIT.match(text) if r == -1 else None
        if pm and int(pm.group(2)) != 0:
            self.exits.append((int(pm.group(1)), int(pm.group(2))))
        if (pm and int(pm.group(2)) != 0) or any(h in text for h in _FAILURE_HINTS):
            self.failed_at.append(time.monotonic())
        if r == 0:
            print(text, file=self.out, flush=True)

    def show_other_ranks(self) -> None:
        for r in sorted(self.tails):
            if r != 0:
                name = "horovodrun" if r < 0 else f"rank {r}"
                print(f"--- last lines of {name} ---", file=self.out)
                print("\n".join(self.tails[r]), file=self.out, flush=True)


def _wait(proc: subprocess.Popen, ranks: _RankOutput, t0: float, timeout: float,
          failure_grace: float) -> tuple:
    """(exit status, why it was stopped or None): wait, killing the group on timeout or a failed rank."""
    while True:
        try:
            return proc.wait(timeout=0.5), None
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            why = None
            if now - t0 > timeout:
                why = f"timed out after {timeout:.0f} s and was stopped"
            elif ranks.failed_at and now - ranks.failed_at[0] > failure_grace:
                why = (f"had a failed rank and did not exit within {failure_grace:.0f} s; "
                       f"the process group was killed")
            if why:
                _kill_group(proc)
                return proc.returncode, why


def launch(np_: int, train_args, *, hosts: str | None = None, hostfile: str | None = None,
           timeout: float = 3600, out=None, threads: int | None = None, env: dict | None = None,
           log_file=None, failure_grace: float = 20.0, cwd=None) -> dict:
    """Run a training with ``np_`` processes in a subprocess; return its throughput JSON.

    Rank 0's output is streamed live to ``out`` (default ``sys.stdout``, so it shows in a
    notebook or terminal) with the ``[0]<stdout>:`` prefixes stripped; other ranks stay
    quiet unless the run fails, in which case their last lines are shown. Each rank gets
    ``threads`` intra-op threads (default: cores // np_) through ``TF_NUM_INTRAOP_THREADS``.

    Failure handling: the whole process group (horovodrun and every rank) is killed after
    ``timeout`` seconds, and ``failure_grace`` seconds after the first sign that a rank
    failed (horovodrun's "Process N exit with status code" line or Horovod's shut-down
    message), so survivors stuck in a collective cannot hang the launcher. horovodrun
    --gloo normally terminates the other ranks itself within seconds.

    Returns the parsed ``<model_dir>/summary/summary.json`` (pass ``--use_performance True``),
    or ``{}`` if the run wrote none; relative paths are taken from ``cwd`` (default: the current
    directory), where the run also writes the seed's ``./summary/summary.json``. Raises
    LpcnetError on failure or timeout, naming the first rank that failed and its last error line.
    """
    out = out or sys.stdout
    cmd = train_command(np_, train_args, hosts, hostfile)
    threads = threads or threads_per_rank(np_)
    run_env = {**os.environ, **(env or {}),
               "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
               "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    log = open(log_file, "w") if log_file else None
    ranks = _RankOutput(out, log, plain=cmd[1:3] == ["-m", "lpcnet.train"])
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=run_env, start_new_session=True, bufsize=1, cwd=cwd)
    reader = threading.Thread(target=lambda: [ranks.feed(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        rc, why = _wait(proc, ranks, t0, timeout, failure_grace)
    except BaseException:
        _kill_group(proc)        # e.g. KeyboardInterrupt in a notebook: no orphaned ranks
        raise
    finally:
        reader.join(timeout=10)
        if log:
            log.close()
    if rc != 0 or why:
        ranks.show_other_ranks()
        raise LpcnetError(f"training with np={np_} " + (why or f"failed (exit {rc})") +
                          f" after {time.monotonic() - t0:.0f} s" +
                          _failure_reason(ranks.exits, ranks.errors))
    model_dir = _arg_value(train_args, "--model_dir", ".")
    summary = Path(cwd or ".") / model_dir / "summary" / "summary.json"
    return json.loads(summary.read_text()) if summary.exists() else {}


#: Error lines that are the *consequence* of another rank failing (a collective that lost
#: its peer), not a cause: a rank showing one of these is blamed only if no other can be.
_SECONDARY_ERROR = re.compile(r"Horovod|gloo|Connection closed|connection reset|Graph execution error"
                              r"|UnknownError|AbortedError|shut down", re.IGNORECASE)
_SIGTERM = 15


def _failure_reason(exits, errors) -> str:
    """': rank 1 exited with status 1: RuntimeError: ...' for the rank that caused the failure.

    Ranks end in a race once one fails: the survivors' collectives error out ("Graph
    execution error", "Horovod has been shut down") and horovodrun SIGTERMs the rest, often
    before the failing rank's own exit is reported. So the root cause is, in order: a rank
    whose last error line is not such a consequence; a rank killed by a signal other than
    horovodrun's SIGTERM; then the first rank that exited non-zero or printed an error.
    """
    status = {}
    for r, st in exits:
        status.setdefault(r, st)
    ranks = list(status) + [r for r in errors if r >= 0 and r not in status]

    def killed_by(st):
        return st - 128 if st is not None and st > 128 else -st if st is not None and st < 0 else None

    def blame(i_r):
        i, r = i_r
        if r in errors and not _SECONDARY_ERROR.search(errors[r]):
            return (0, i)
        if killed_by(status.get(r)) not in (None, _SIGTERM):
            return (1, i)
        return (2, i)

    if not ranks:
        return f": {errors[-1]}" if -1 in errors else ""
    _, r = min(enumerate(ranks), key=blame)
    st = status.get(r)
    sig = killed_by(st)
    what = f"rank {r} " + (f"was killed (signal {sig})" if sig is not None
                           else f"exited with status {st}" if st is not None else "failed")
    return f": {what}: {errors[r]}" if r in errors else f": {what}"


def _descendants(pid: int) -> list[int]:
    """Pids of all descendants of ``pid`` (from /proc; horovodrun starts ranks in new sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the launched run: horovodrun's process group and every rank it started."""
    pids = _descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for target in [proc.pid, *pids]:
            try:
                if target == proc.pid:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=5)
            if sig == signal.SIGTERM and not any(_alive(p) for p in pids):
                return
        except subprocess.TimeoutExpired:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    st = Path(f"/proc/{pid}/stat")
    try:
        return st.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
