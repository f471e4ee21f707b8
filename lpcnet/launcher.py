"""The launcher: ``lpcnet launch`` / ``python -m lpcnet.launcher`` / :func:`launch` (docs/distributed.md).

Starts ``lpcnet train`` on N processes with ``horovodrun`` (gloo), fixed-size or elastic, the
way the run scripts and notebooks do: each rank gets its threads and Horovod settings
(:func:`rank_environment`), rank 0's output is streamed live, and when a rank fails the report
starts with that rank's own error (:func:`launch`). The collectives that run inside the ranks
are in :mod:`lpcnet.distributed`; nothing here imports Horovod's TensorFlow part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

from lpcnet.argtypes import check_whole, nonnegative_int, positive_float, positive_int
from lpcnet.errors import LpcnetError

#: Set by the launcher in each rank's environment: "1" pins the rank to its share of the cores
#: (:func:`lpcnet.distributed.pin_to_cores`, applied in ``distributed.init``).
PIN_ENV = "LPCNET_PIN_CORES"

# --- launching ---------------------------------------------------------------
_RANK_PREFIX = re.compile(r"^\[(\d+)\]<(stdout|stderr)>:(.*)$")
#: The kit's host-discovery script for elastic runs (reads LPCNET_HOSTS_FILE or HOSTS).
DISCOVERY_SCRIPT = Path(__file__).resolve().parents[1] / "run_scripts" / "discover_hosts.sh"
#: Horovod's background thread coordinates every HOROVOD_CYCLE_TIME ms while a tensor waits (and,
#: in stock Horovod, also while none does: each idle cycle costs CPU, each step's allreduce waits
#: for the next cycle); 2 ms measured best with stock Horovod on an idle machine
#: (docs/benchmarks.md#scaling).
CYCLE_TIME_MS = "2"
#: "1": Horovod's background thread sleeps until a tensor is enqueued instead of cycling while
#: idle (the kit's Horovod patch, third_party/horovod/; a stock Horovod ignores the variable).
WAKE_ON_ENQUEUE = "1"


class Elastic(NamedTuple):
    """Options of an elastic launch (Horovod elastic, gloo; docs/distributed.md, Elastic training).

    ``hosts_file``: a file of ``host:slots`` lines that the kit's discovery script reads each
    time Horovod asks (edit it to add or remove hosts); ``discovery_script``: your own script
    instead. ``network_interface`` (default ``lo`` when every host is this machine);
    ``cooldown``: (min, max) seconds a failed host stays excluded (default: for good).
    """

    min_np: int
    max_np: int
    hosts_file: str | None = None
    discovery_script: str | None = None
    network_interface: str | None = None
    cooldown: tuple | None = None
    reset_limit: int | None = None


def threads_per_rank(np_: int, cores: int | None = None) -> int:
    """Intra-op threads per rank so that ``np_`` ranks do not oversubscribe the cores."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, np_))


def local_host_names() -> list[str]:
    """Distinct names of this machine that Horovod starts ranks on without ssh.

    Horovod elastic excludes the whole *host* of a failed worker, so one machine acting as
    several hosts (tests, notebook 04) needs one name per worker: ``localhost``,
    ``127.0.0.1``, then the host name if it resolves to a local address.
    """
    names = ["localhost", "127.0.0.1"]
    try:
        from horovod.runner.common.util import network

        local = network.get_local_host_addresses()
        host = socket.gethostname()
        if network.resolve_host_address(host) in local and host not in names:
            names.append(host)
    except Exception:  # noqa: BLE001 (no Horovod, odd resolver): two names are enough here
        pass
    return names


def write_hosts_file(path, hosts) -> Path:
    """Write ``{host: slots}`` (or a list of ``host:slots``) as the hosts file of an elastic run."""
    from lpcnet.formats import atomic_output

    lines = [f"{h}:{s}" for h, s in hosts.items()] if isinstance(hosts, dict) else list(hosts)
    with atomic_output(path, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))
    return Path(path)


def change_hosts_when(path, hosts, trigger, timeout: float = 600.0, out=None) -> threading.Thread:
    """Rewrite the hosts file ``path`` as ``hosts`` once the file ``trigger`` exists (a daemon thread).

    How a cluster taking a machine away (or adding one) is played on one machine, e.g. when the
    first checkpoint of an elastic run appears. Gives up after ``timeout`` seconds.
    """
    def wait_and_write(deadline=time.monotonic() + timeout):
        while not Path(trigger).exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        write_hosts_file(path, hosts)
        print(f"(hosts file now: {', '.join(f'{h}:{n}' for h, n in dict(hosts).items())})",
              file=out or sys.stdout, flush=True)

    thread = threading.Thread(target=wait_and_write, daemon=True, name="lpcnet-hosts-change")
    thread.start()
    return thread


def _elastic_hosts(elastic) -> list[str] | None:
    """Host names the kit's discovery script will list now (file, else HOSTS, else localhost);
    None with the user's own discovery script (unknown)."""
    if elastic.discovery_script:
        return None
    if elastic.hosts_file:
        try:
            lines = Path(elastic.hosts_file).read_text().splitlines()
        except OSError:
            return []
    elif os.environ.get("HOSTS"):
        lines = os.environ["HOSTS"].split(",")
    else:
        lines = ["localhost"]
    return [ln.split(":")[0].strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _all_local(elastic) -> bool:
    """Every host of the elastic run is this machine (then gloo uses the loopback interface)."""
    names = _elastic_hosts(elastic)
    return bool(names) and set(names) <= set(local_host_names())


def _strip_flags(args, flags) -> list[str]:
    """``args`` without the given flags and their values (``--f V``, ``--f=V``, or a bare ``--f``)."""
    keep, skip = [], False
    for a in map(str, args):
        if skip:
            skip = False
            if not a.startswith("-"):
                continue
        if a in flags:
            skip = True
            continue
        if not any(a.startswith(f + "=") for f in flags):
            keep.append(a)
    return keep


def train_command(np_: int, train_args, hosts: str | None = None, hostfile: str | None = None,
                  python: str = sys.executable, elastic: Elastic | None = None,
                  network_interface: str | None = None) -> list[str]:
    """The command line that trains with ``np_`` processes.

    ``np_ == 1`` without hosts: plain ``python -m lpcnet.train``. Otherwise
    ``horovodrun -np N --gloo -H hosts|--hostfile FILE python -m lpcnet.train ... --use_horovod True``;
    host lists and hostfiles are passed to Horovod untouched (multi-node is Horovod's job);
    ``network_interface`` becomes horovodrun's ``--network-interface`` (the NIC gloo uses).
    With ``elastic`` (its own ``network_interface``): ``horovodrun -np N --min-np A --max-np B --host-discovery-script S ...
    --elastic True --min-np A --max-np B``.
    """
    np_ = check_whole(np_, "np (number of processes)")
    kit_flags = ("--use_horovod",) + (("--elastic", "--min-np", "--max-np") if elastic else ())
    train = [python, "-m", "lpcnet.train", *_strip_flags(train_args, kit_flags)]
    if np_ == 1 and not hosts and not hostfile and not elastic and not network_interface:
        return train
    horovodrun = shutil.which("horovodrun", path=str(Path(python).parent)) or shutil.which("horovodrun")
    if not horovodrun:
        raise LpcnetError("horovodrun not found (Horovod is not installed in this environment)")
    cmd = [horovodrun, "-np", str(np_)]
    if elastic:
        check_whole(elastic.min_np, "min_np (elastic)")
        check_whole(elastic.max_np, "max_np (elastic)")
        if not 1 <= elastic.min_np <= np_ <= elastic.max_np:
            raise LpcnetError(f"elastic run: need 1 <= --min-np ({elastic.min_np}) <= -np ({np_}) "
                              f"<= --max-np ({elastic.max_np})")
        script = elastic.discovery_script or str(DISCOVERY_SCRIPT)
        cmd += ["--min-np", str(elastic.min_np), "--max-np", str(elastic.max_np),
                "--host-discovery-script", str(script)]
        nic = elastic.network_interface or ("lo" if _all_local(elastic) else None)
        if nic:
            cmd += ["--network-interface", nic]
        if elastic.cooldown:
            cmd += ["--blacklist-cooldown-range", *map(str, elastic.cooldown)]
        if elastic.reset_limit is not None:
            cmd += ["--reset-limit", str(elastic.reset_limit)]
        cmd += ["--gloo"]
        return cmd + train + ["--use_horovod", "True", "--elastic", "True", "--min-np",
                              str(elastic.min_np), "--max-np", str(elastic.max_np)]
    if network_interface:
        cmd += ["--network-interface", network_interface]
    cmd += ["--gloo"]
    if hostfile:
        cmd += ["--hostfile", str(hostfile)]
    else:
        cmd += ["-H", hosts or f"localhost:{np_}"]
    return cmd + train + ["--use_horovod", "True"]


def rank_environment(np_: int, threads: int | None = None, *, pin: bool = False, one_host: bool = True,
                     cores: int | None = None) -> dict:
    """Environment variables every rank gets from :func:`launch` (docs/distributed.md, Threads and cores).

    ``threads`` intra-op threads (default cores // np_), one inter-op thread, OpenMP alike;
    Horovod's background cycle at :data:`CYCLE_TIME_MS` ms unless HOROVOD_CYCLE_TIME is set
    (the default 1 ms cycle cost each rank 7-10 % of a core, measured in docs/benchmarks.md) and
    its wake on enqueue (:data:`WAKE_ON_ENQUEUE`) unless HOROVOD_WAKE_ON_ENQUEUE is set;
    with ``pin`` on one host with at least one core per rank, ``LPCNET_PIN_CORES=1`` (each
    rank pins itself to its share of the cores in ``distributed.init``; also set it yourself).
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    np_ = check_whole(np_, "np (number of processes)")
    if threads is not None:
        threads = check_whole(threads, "threads (intra-op threads per rank)")
    threads = threads or threads_per_rank(np_, cores)
    env = {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
           "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "HOROVOD_CYCLE_TIME": os.environ.get("HOROVOD_CYCLE_TIME", CYCLE_TIME_MS),
           "HOROVOD_WAKE_ON_ENQUEUE": os.environ.get("HOROVOD_WAKE_ON_ENQUEUE", WAKE_ON_ENQUEUE)}
    if pin and np_ > 1 and one_host and np_ * threads <= cores:
        env[PIN_ENV] = "1"
    return env


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
    """Reads the launched run's output: rank 0's lines to ``out``, every rank's tail, failure signs.

    Rank 0's lines are shown live until the first sign of a failure (a traceback, an error
    line, a rank's non-zero exit); from then on nothing more is shown live, so that the
    failure report (:func:`launch`) starts with the rank that caused it. In an elastic run a
    lost worker is not a failure (the others continue) and every rank's stdout is shown,
    since rank 0 may be a different process after a reset (only the chief prints), with
    the ``elastic:`` notes of the kit's elastic loop.
    """

    def __init__(self, out, log, plain: bool, elastic: bool = False):
        self.out, self.log, self.plain, self.elastic = out, log, plain, elastic  # plain: np=1
        self.tails: dict[int, deque] = {}
        self.errors: dict[int, str] = {}            # rank -> last error-looking line
        self.exits: list[tuple[int, int]] = []      # (rank, status) of ranks that exited non-zero
        self.failed_at: list[float] = []            # monotonic time of each failure sign
        self.holding = False                        # a failure started: show nothing more live
        self.lock = threading.Lock()

    def feed(self, line: str) -> None:
        with self.lock:
            self._feed(line)

    def _feed(self, line: str) -> None:
        if self.log:
            self.log.write(line)
            self.log.flush()
        text = line.rstrip("\n")
        m = _RANK_PREFIX.match(text)
        stream = "stdout"
        if m:
            r, stream, text = int(m.group(1)), m.group(2), m.group(3)
        else:
            r = 0 if self.plain else -1          # -1: horovodrun's own messages
        self.tails.setdefault(r, deque(maxlen=40)).append(text)
        error = bool(_ERROR_LINE.match(text))
        if error:
            self.errors[r] = text.strip()
        pm = _PROC_EXIT.match(text) if r == -1 else None
        failed_exit = bool(pm and int(pm.group(2)) != 0)
        if failed_exit:
            self.exits.append((int(pm.group(1)), int(pm.group(2))))
        if not self.elastic and (failed_exit or any(h in text for h in _FAILURE_HINTS)):
            self.failed_at.append(time.monotonic())
        if text.startswith("Traceback (most recent call last)") or (error and not self.elastic) \
                or (failed_exit and not self.elastic):
            self.holding = True
        if self.elastic:    # rank numbers change on a reset: any worker's stdout, the kit's notes
            show = r >= 0 and (stream == "stdout" or text.startswith("elastic:"))
        else:
            show = r == 0
        if show and not self.holding:
            print(text, file=self.out, flush=True)

    def report(self, cause_rank: int | None, err) -> None:
        """The failing rank's last lines, then the other ranks' and horovodrun's, shorter."""
        order = ([cause_rank] if cause_rank in self.tails else []) + \
            [r for r in sorted(self.tails, key=lambda r: (r < 0, r)) if r != cause_rank]
        for r in order:
            name = "horovodrun" if r < 0 else f"rank {r}"
            lines = list(self.tails[r])
            if r == cause_rank:
                print(f"--- {name} (the cause): last lines ---", file=err)
            else:
                lines = [ln for ln in lines if ln.strip()][-6:]
                if not lines:
                    continue
                print(f"--- {name} (stopped because of it): last lines ---", file=err)
            print("\n".join(lines), file=err, flush=True)


def _wait(proc: subprocess.Popen, ranks: _RankOutput, t0: float, timeout: float | None,
          failure_grace: float) -> tuple:
    """(exit status, why it was stopped or None): wait, killing the group on timeout or a failed rank."""
    while True:
        try:
            return proc.wait(timeout=0.5), None
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            why = None
            if timeout is not None and now - t0 > timeout:
                why = f"timed out after {timeout:.0f} s and was stopped"
            elif ranks.failed_at and now - ranks.failed_at[0] > failure_grace:
                why = (f"had a failed rank and did not exit within {failure_grace:.0f} s; "
                       f"the process group was killed")
            if why:
                _kill_group(proc)
                return proc.returncode, why


def launch_environment(np_: int, hosts: str | None = None, hostfile: str | None = None, *,
                       threads: int | None = None, pin: bool = False, elastic: Elastic | None = None,
                       env: dict | None = None) -> dict:
    """The environment :func:`launch` starts horovodrun (and so every rank) with: this process's,
    then :func:`rank_environment`'s, the elastic discovery script's variables, then ``env``."""
    one_host = not hostfile and (hosts is None or set(re.findall(r"([^,:]+):\d+", hosts)) <= {"localhost"}) \
        and (elastic is None or _all_local(elastic))
    run_env = {**os.environ, **rank_environment(np_ if not elastic else elastic.max_np, threads,
                                                pin=pin, one_host=one_host)}
    if elastic:
        # The kit's discovery script offers localhost:MAX when no hosts are given
        # (run_scripts/discover_hosts.sh), not env.sh's NP.
        run_env["LPCNET_ELASTIC_MAX_NP"] = str(elastic.max_np)
        if elastic.hosts_file:
            run_env["LPCNET_HOSTS_FILE"] = str(Path(elastic.hosts_file).resolve())
    return {**run_env, **(env or {})}


def _input_files(train_args, *extra, cwd=None) -> dict:
    """``{label: path}`` of the run's input files: every train argument (``V`` after a flag, or
    ``--flag=V``) that names an existing file (relative to ``cwd``), labelled with its flag, and
    the ``extra`` paths given."""
    args, found = [str(a) for a in train_args], {}
    for i, a in enumerate(args):
        if a.startswith("-") and "=" in a:
            flag, value = a.split("=", 1)
        else:
            flag, value = (args[i - 1] if i and args[i - 1].startswith("-") else ""), a
        path = Path(cwd or ".") / value
        if value and path.is_file():
            found[f"{flag} {value}".strip()] = path
    found.update({str(p): p for p in extra if p})
    return found


def _open_log(log_file, train_args, inputs=(), cwd=None):
    """Open ``log_file`` for writing after refusing (one line) a log that is one of the run's
    input files (docs/distributed.md) or a path that cannot become a writable file."""
    from lpcnet.formats import check_output_path, check_outputs

    try:
        check_output_path(log_file)
    except LpcnetError as exc:
        raise LpcnetError(f"--log {exc}") from None
    check_outputs(_input_files(train_args, *inputs, cwd=cwd), {f"--log {log_file}": log_file})
    path = Path(log_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w")
    except OSError as exc:
        raise LpcnetError(f"--log {log_file}: cannot write ({exc.strerror or exc})") from None


def launch(np_: int, train_args, *, hosts: str | None = None, hostfile: str | None = None,
           timeout: float | None = 3600, out=None, err=None, threads: int | None = None,
           env: dict | None = None, log_file=None, failure_grace: float = 20.0, cwd=None,
           pin: bool = False, elastic: Elastic | None = None,
           network_interface: str | None = None) -> dict:
    """Run a training with ``np_`` processes in a subprocess; return its throughput JSON.

    Rank 0's output is streamed live to ``out`` (default ``sys.stdout``, so it shows in a
    notebook or terminal) with the ``[0]<stdout>:`` prefixes stripped; other ranks stay
    quiet. Each rank gets the environment of :func:`rank_environment` (``threads``
    intra-op threads, default cores // np_; Horovod's cycle time; with ``pin``, pinned to
    its share of the cores on one host), then ``env``.

    Failure handling: the whole process group (horovodrun and every rank) is killed after
    ``timeout`` seconds (None: no limit), and ``failure_grace`` seconds after the first sign
    that a rank failed, so survivors stuck in a collective cannot hang the launcher. Once a
    rank fails nothing more is streamed; the report written to ``err`` (default ``out``)
    starts with one line naming the rank that caused the failure and its own error, then
    that rank's last lines, then the others' (consequences); the same line is the message of
    the LpcnetError raised. ``log_file`` gets every rank's full output.

    ``elastic`` (:class:`Elastic`): Horovod elastic (workers may leave and join; a lost
    worker is not a failure); ``np_`` is the number to start with. ``network_interface``: the
    NIC gloo uses in a fixed-size run (an elastic run takes its own from ``elastic``).

    Returns the parsed ``<model_dir>/summary/summary.json`` (pass ``--use_performance True``),
    or ``{}`` if the run wrote none; relative paths are taken from ``cwd`` (default: the current
    directory), where the run also writes the seed's ``./summary/summary.json``.
    """
    out = out or sys.stdout
    err = err or out
    if timeout is not None and not timeout > 0:      # NaN too
        raise LpcnetError(f"timeout must be a number of seconds > 0 (or None: no limit), got {timeout}")
    cmd = train_command(np_, train_args, hosts, hostfile, elastic=elastic,
                        network_interface=network_interface)
    run_env = launch_environment(np_, hosts, hostfile, threads=threads, pin=pin, elastic=elastic, env=env)
    log = _open_log(log_file, train_args, [hostfile] + ([elastic.hosts_file, elastic.discovery_script]
                                                      if elastic else []), cwd) if log_file else None
    ranks = _RankOutput(out, log, plain=cmd[1:3] == ["-m", "lpcnet.train"], elastic=elastic is not None)
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
        cause_rank, reason = _failure_reason(ranks.exits, ranks.errors)
        world = f"np={np_}" if not elastic else f"np={elastic.min_np}..{elastic.max_np} (elastic)"
        message = (f"training with {world} " + (why or f"failed (exit {rc})") +
                   f" after {time.monotonic() - t0:.0f} s" + reason)
        print(message, file=err, flush=True)
        ranks.report(cause_rank, err)
        if log_file:
            print(f"(the full output of every rank is in {log_file})", file=err, flush=True)
        raise LpcnetError(message)
    model_dir = _arg_value(train_args, "--model_dir", ".")
    summary = Path(cwd or ".") / model_dir / "summary" / "summary.json"
    return json.loads(summary.read_text()) if summary.exists() else {}


#: Error lines that are the *consequence* of another rank failing (a collective that lost
#: its peer), not a cause: a rank showing one of these is blamed only if no other can be.
_SECONDARY_ERROR = re.compile(r"Horovod|gloo|Connection closed|connection reset|Graph execution error"
                              r"|UnknownError|AbortedError|shut down", re.IGNORECASE)
_SIGTERM = 15


def _failure_reason(exits, errors) -> tuple:
    """``(rank, ': rank 1 exited with status 1: RuntimeError: ...')`` for the rank that caused the failure.

    Ranks end in a race once one fails: the survivors' collectives error out ("Graph
    execution error", "Horovod has been shut down") and horovodrun SIGTERMs the rest, often
    before the failing rank's own exit is reported. So the root cause is, in order: a rank
    whose last error line is not such a consequence; a rank killed by a signal other than
    horovodrun's SIGTERM; then the first rank that exited non-zero or printed an error.
    The rank is None when no rank can be named (e.g. horovodrun itself failed).
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
        return (-1 if -1 in errors else None), (f": {errors[-1]}" if -1 in errors else "")
    _, r = min(enumerate(ranks), key=blame)
    st = status.get(r)
    sig = killed_by(st)
    what = f"rank {r} " + (f"was killed (signal {sig})" if sig is not None
                           else f"exited with status {st}" if st is not None else "failed")
    return r, (f": {what}: {errors[r]}" if r in errors else f": {what}")


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


# --- command line: ``lpcnet launch`` / ``python -m lpcnet.launcher`` (the run scripts' path) ---
def add_arguments(p) -> None:
    p.description = ("Start `lpcnet train` on N processes with Horovod (gloo), fixed or elastic; "
                     "rank 0's output live; a failed rank's own error first. Flags after `--` go "
                     "to `lpcnet train`.")
    p.add_argument("-np", "--np", dest="np", type=positive_int, required=True,
                   help="processes to start (elastic: to start with)")
    p.add_argument("--hosts", default=None, help="horovodrun -H list, e.g. node1:4,node2:4")
    p.add_argument("--hostfile", default=None, help="horovodrun hostfile (lines 'host slots=N')")
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads per rank "
                   "(default: this host's cores // np)")
    p.add_argument("--timeout", type=positive_float, default=None, help="stop the run after this many seconds")
    p.add_argument("--log", default=None, help="write every rank's full output to this file (refused "
                   "when it is one of the run's input files)")
    p.add_argument("--pin-cores", action="store_true", help="pin each rank to its share of this host's "
                   "cores (dedicated machines; see docs/distributed.md)")
    g = p.add_argument_group("elastic training (docs/distributed.md)")
    g.add_argument("--elastic", action="store_true", help="Horovod elastic: workers may leave and join")
    g.add_argument("--min-np", type=positive_int, default=None,
                   help="fewest workers to continue with (default 1)")
    g.add_argument("--max-np", type=positive_int, default=None,
                   help="most workers (default -np); the global batch "
                   "is --batch_size x --max-np")
    g.add_argument("--hosts-file", default=None, help="file of 'host:slots' lines read by the kit's "
                   "discovery script while the run goes (edit it to add or remove hosts)")
    g.add_argument("--host-discovery-script", default=None, help="your own discovery script instead")
    p.add_argument("--network-interface", default=None, help="NIC for gloo, fixed or elastic (elastic: "
                   "default lo when every host is this machine)")
    g.add_argument("--blacklist-cooldown", type=nonnegative_int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="seconds a failed host stays excluded before it may rejoin (default: for good)")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the flags of `lpcnet train`")


def run(args) -> int:
    train_args = list(args.train_args)
    if train_args and train_args[0] == "--":
        train_args = train_args[1:]
    if not train_args:
        raise LpcnetError("no `lpcnet train` flags given (put them after --)")
    elastic = None
    if args.elastic:
        elastic = Elastic(min_np=args.min_np or 1, max_np=args.max_np or args.np,
                          hosts_file=args.hosts_file, discovery_script=args.host_discovery_script,
                          network_interface=args.network_interface, cooldown=args.blacklist_cooldown)
    elif (args.min_np or args.max_np or args.hosts_file or args.host_discovery_script
          or args.blacklist_cooldown):
        raise LpcnetError("--min-np/--max-np/--hosts-file/--host-discovery-script/--blacklist-cooldown "
                          "need --elastic")
    launch(args.np, train_args, hosts=args.hosts or None, hostfile=args.hostfile or None,
           timeout=args.timeout, threads=args.threads, log_file=args.log, elastic=elastic,
           pin=args.pin_cores, err=sys.stderr,
           network_interface=None if elastic else args.network_interface)
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.launcher", argv)


if __name__ == "__main__":
    raise SystemExit(main())
