"""Command line of the benchmarks: flags -> keyword arguments of the registered functions.

The only place where command-line arguments become keyword arguments: each registered
benchmark lists the keyword arguments the command line may set (``Benchmark.arguments``),
:data:`FLAGS` gives each its flag, and the defaults shown in ``--help`` are read from the
functions' signatures (one source). A flag a benchmark does not take is ignored.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import NamedTuple

from lpcnet.argtypes import nonnegative_int, positive_float, positive_int
from lpcnet.bench import BENCHMARKS
from lpcnet.bench.harness import check_output_file
from lpcnet.config import gru_units
from lpcnet.errors import LpcnetError
from lpcnet.formats import atomic_output


class Flag(NamedTuple):
    """The command-line flag of a keyword argument."""

    option: str
    type: type
    help: str


#: keyword argument -> flag. Two keyword arguments may share a flag (``--repeat``).
FLAGS = {
    "seconds": Flag("--seconds", positive_float, "seconds of audio to process"),
    "reference_seconds": Flag("--reference-seconds", positive_float,
                              "seconds of audio for the (slow) reference implementation"),
    "repeat": Flag("--repeat", positive_int, "timed repetitions (best is reported)"),
    "rounds": Flag("--repeat", positive_int, "rounds of interleaved timed steps (median is reported)"),
    "gru_a": Flag("--gru-a", gru_units, "GRU A units"),
    "gru_b": Flag("--gru-b", gru_units, "GRU B units"),
    "batch": Flag("--batch", positive_int, "sequences per batch (per rank for scaling)"),
    "steps": Flag("--steps", positive_int, "timed steps per variant"),
    "every": Flag("--every", nonnegative_int, "steps between evaluations (0: at the epoch end only)"),
    "plot": Flag("--plot", str, "write the streams-per-core curve to this PNG"),
    "minutes": Flag("--minutes", positive_float, "longest input in minutes (and two shorter ones)"),
}


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def _flag_help() -> dict:
    """option -> (type, help naming each benchmark that takes it and its default)."""
    out: dict = {}
    for name, bench in BENCHMARKS.items():
        params = inspect.signature(bench.function).parameters
        for kw in bench.arguments:
            flag = FLAGS[kw]
            typ, helps, uses = out.setdefault(flag.option, (flag.type, {}, []))
            helps.setdefault(flag.help, []).append(name)
            uses.append(f"{name} {params[kw].default}")
    table = {}
    for opt, (typ, helps, uses) in out.items():
        text = (next(iter(helps)) if len(helps) == 1
                else "; ".join(f"{', '.join(names)}: {h}" for h, names in helps.items()))
        table[opt] = (typ, f"{text} (default: {', '.join(uses)})")
    return table


def add_arguments(p) -> None:
    p.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark to run")
    for option, (typ, help_text) in _flag_help().items():
        p.add_argument(option, dest=_dest(option), type=typ, default=argparse.SUPPRESS, help=help_text)
    p.add_argument("--json", default=None, help="append the result as one JSON line to this file")


def benchmark_kwargs(args) -> dict:
    """The keyword arguments of ``args.name``'s function that the command line set."""
    dests = {kw: _dest(FLAGS[kw].option) for kw in BENCHMARKS[args.name].arguments}
    return {kw: getattr(args, dest) for kw, dest in dests.items() if hasattr(args, dest)}


def check_json_lines(path) -> Path:
    """Refuse (one line), before the benchmark runs, a ``--json`` file the result could not be
    appended to: a path that cannot be written (:func:`check_output_file`), or an existing
    file that is not JSON lines (its first line does not parse as JSON, e.g. a binary file)."""
    path = check_output_file(path, "--json")
    if path.is_file() and path.stat().st_size:
        try:
            with open(path, "rb") as f:
                json.loads(f.readline(1 << 20))       # a result line is far shorter
        except (OSError, ValueError) as exc:
            raise LpcnetError(f"--json {path}: exists and is not a file of JSON lines ({exc}); "
                              f"refusing to append to it (choose another file)") from None
    return path


def append_json_line(path, result: dict) -> None:
    """Append ``result`` as one JSON line to ``path`` (the file rewritten atomically)."""
    path = Path(path)
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    with atomic_output(path, "wb") as f:
        f.write(old + (json.dumps(result) + "\n").encode())


def run(args) -> int:
    if args.json:
        check_json_lines(args.json)
    result = BENCHMARKS[args.name].function(**benchmark_kwargs(args))
    if args.json:
        append_json_line(args.json, result)
    return 0


def main(argv=None) -> int:
    from lpcnet.cli import module_main

    return module_main(__name__, "python -m lpcnet.bench", argv)


if __name__ == "__main__":
    raise SystemExit(main())
