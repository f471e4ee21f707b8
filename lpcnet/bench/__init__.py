"""Benchmarks of the kit: ``python -m lpcnet.bench NAME`` / ``lpcnet bench NAME`` (docs/benchmarks.md).

Each benchmark is a function of keyword arguments that prints a short table and returns its
numbers as a dict; notebooks and tests call them directly. :data:`BENCHMARKS` registers
them: name -> :class:`Benchmark` (function, one-line help, the keyword arguments the
command line may set). :mod:`lpcnet.bench.cli` is the one place that turns flags into those
keyword arguments; nothing else in the package imports ``lpcnet.bench``.

Modules: one per benchmark (``features``, ``train``, ``train_e2e``, ``scaling``, ``synth``,
``synth_memory``, ``eval_memory``, ``quality``), ``harness``
(one-core pinning, timers, the bundled speech), ``baselines`` (the plain-Keras model the
training benchmark compares against) and ``report`` (tables and plots of the results).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from lpcnet.bench.eval_memory import bench_eval_memory
from lpcnet.bench.features import bench_features
from lpcnet.bench.quality import bench_quality
from lpcnet.bench.scaling import bench_scaling
from lpcnet.bench.synth import bench_synth
from lpcnet.bench.synth_memory import bench_synth_memory
from lpcnet.bench.train import bench_train
from lpcnet.bench.train_e2e import bench_train_e2e


class Benchmark(NamedTuple):
    """A registered benchmark: ``function(**kwargs) -> dict``, its help, its command-line arguments."""

    function: Callable[..., dict]
    help: str
    arguments: tuple


#: name -> Benchmark. Add a benchmark with one entry here (and its flags in lpcnet.bench.cli).
BENCHMARKS = {
    "features": Benchmark(bench_features,
                          "feature extraction x real time: C -test/-train vs NumPy reference",
                          ("seconds", "reference_seconds", "repeat")),
    "train": Benchmark(bench_train,
                       "training sequences/s: our train_step vs plain Keras fit, FP32 vs bf16 AMP",
                       ("gru_a", "gru_b", "batch", "steps", "rounds")),
    "scaling": Benchmark(bench_scaling,
                         "Horovod weak scaling: sequences/s at np=1 and np=2, one thread per rank",
                         ("gru_a", "gru_b", "batch", "steps", "rounds")),
    "quality": Benchmark(bench_quality,
                         "training sequences/s without and with --eval-audio scoring beside it",
                         ("gru_a", "gru_b", "batch", "steps", "every", "rounds")),
    "synth": Benchmark(bench_synth, "synthesis RTF on one core: native float/int8 vs Keras reference, "
                       "int8 vs float, the CLI path, K streams per core",
                       ("seconds", "reference_seconds", "repeat", "plot")),
    "synth-memory": Benchmark(bench_synth_memory,
                              "synthesis peak memory for 1, 10 and 30 minutes of audio",
                              ("minutes",)),
    "eval-memory": Benchmark(bench_eval_memory,
                             "lpcnet eval peak memory and time for 1, 3 and 10 minute pairs",
                             ("minutes",)),
    "train-e2e": Benchmark(bench_train_e2e,
                           "training sequences/s: the end-to-end variant (--end2end) vs the standard model",
                           ("gru_a", "gru_b", "batch", "steps", "rounds")),
}

__all__ = ["BENCHMARKS", "Benchmark", "bench_eval_memory", "bench_features", "bench_quality", "bench_scaling", "bench_synth",
           "bench_synth_memory", "bench_train", "bench_train_e2e"]
