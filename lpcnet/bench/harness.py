"""What the benchmarks share: one-core pinning, timers and the bundled real speech."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from lpcnet.errors import LpcnetError
from lpcnet.formats import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "data" / "slice"


class OneCore:
    """Context: run on a single CPU so the numbers are per core; restores the CPU set after.

    ``pick`` chooses the CPU from the allowed set (default the lowest); ``as`` gives it.
    """

    def __init__(self, pick=min):
        self.pick = pick

    def __enter__(self) -> int | None:
        self.saved = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
        if self.saved is None:
            return None
        cpu = self.pick(self.saved)
        os.sched_setaffinity(0, {cpu})
        return cpu

    def __exit__(self, *exc):
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)
        return False


def check_output_file(path, flag: str, suffix: str | None = None) -> Path:
    """Refuse (one line naming ``flag``), before a benchmark runs, an output path that could not
    be written at its end: a folder or a file in the way (:func:`lpcnet.formats.check_output_path`),
    a folder without write permission, or (``suffix``, e.g. ``".png"``) another extension."""
    from lpcnet.formats import check_output_path

    path = Path(path)
    if suffix and path.suffix.lower() != suffix:
        raise LpcnetError(f"{flag} {path}: expected a {suffix} file name")
    try:
        check_output_path(path)
    except LpcnetError as exc:
        raise LpcnetError(f"{flag} {exc}") from None
    folder = next(f for f in (path.parent, *path.parent.parents) if f.exists())
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LpcnetError(f"{flag} {path}: cannot be written: no write permission in {folder}")
    return path


def best_wall_time(fn, repeat: int) -> float:
    """Shortest wall time of ``repeat`` calls of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timed(fn) -> tuple:
    """(wall seconds, process CPU seconds) of one call of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def best_cpu_time(fn, repeat: int) -> tuple:
    """Best (wall, CPU) seconds of ``repeat`` calls, ordered by CPU time."""
    return min((timed(fn) for _ in range(max(1, repeat))), key=lambda t: t[1])


def speech(seconds: float) -> np.ndarray:
    """The bundled real speech (data/slice, both speakers), tiled to ``seconds`` of int16 at 16 kHz."""
    from lpcnet.audio import load_speech
    from lpcnet.formats import float_to_int16

    one = np.concatenate([float_to_int16(load_speech(p)[0]) for p in sorted(SLICE.glob("*.wav"))])
    n = int(seconds * SAMPLE_RATE)
    return np.tile(one, n // len(one) + 1)[:n]


def training_pair(workdir: Path) -> tuple:
    """(features.f32, data.u8) of the bundled training utterance, made by prepare + dump-data -train."""
    from lpcnet.data import prepare
    from lpcnet.features import dump_data

    workdir = Path(workdir)
    prepare([SLICE / "arctic_a0009.wav"], workdir / "input.s16", progress=False)
    dump_data(workdir / "input.s16", workdir / "features.f32", workdir / "data.u8", mode="train",
              seed=0, progress=False)
    return workdir / "features.f32", workdir / "data.u8"
