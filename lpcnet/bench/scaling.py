"""``lpcnet bench scaling``: Horovod weak scaling on the CPU, sequences/s at np = 1 and 2 (docs/benchmarks.md).

Besides throughput and efficiency it prints the **per-step overhead** of the larger world:
the extra wall time of a step (s/step at np=2 minus s/step at np=1, in ms), and the extra
CPU time a rank spends per step (its process CPU time, all threads: the Horovod background
thread, gloo, the collective's Python path), which other load on a shared machine disturbs
far less than the wall time. The CPU times are recorded by this module's own training
callback (``--callbacks-module lpcnet.bench.scaling``).

It also measures the **hardware ceiling** of the larger world: the same single-process run
started np times at once, independently (no Horovod). Their summed throughput over np x the
single run's is what the machine itself allows for np compute-bound processes (shared caches,
memory bandwidth, SMT siblings, turbo); the Horovod efficiency is also given relative to it.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from lpcnet.bench.harness import training_pair

#: Environment variable naming the folder where each rank writes its CPU times per step.
CPU_DIR_ENV = "LPCNET_BENCH_CPU_DIR"
#: Steps left out of the CPU statistics (tracing, warm-up).
WARMUP_STEPS = 5


def _train_args(features, data, model_dir, gru_a, gru_b, batch, steps) -> list:
    """``lpcnet train`` flags of one scaling run (noise and sparsification as in training)."""
    return ["--features", str(features), "--data", str(data), "--model_dir", str(model_dir),
            "--output", "bench", "--grua-size", str(gru_a), "--grub-size", str(gru_b),
            "--batch_size", str(batch), "--epochs", "1", "--steps_per_epoch", str(steps),
            "--seed", "0", "--use_performance", "True", "--no-progress",
            "--callbacks-module", __name__]


def callbacks(rank: int, world: int) -> list:
    """Training callbacks of the benchmark's runs: each rank's CPU seconds per step (process, all threads)."""
    import keras

    out_dir = os.environ.get(CPU_DIR_ENV)
    if not out_dir:
        return []

    class StepCpu(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.cpu: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self._c0 = time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            self.cpu.append(time.process_time() - self._c0)

        def on_train_end(self, logs=None):
            path = Path(out_dir) / f"np{world}_rank{rank}.json"
            path.write_text(json.dumps({"rank": rank, "world": world, "cpu_s": self.cpu}))

    return [StepCpu()]


def _cpu_per_step(cpu_dir: Path, world: int) -> float:
    """Median CPU seconds per step (after warm-up), averaged over the ranks of one run."""
    per_rank = []
    for f in sorted(cpu_dir.glob(f"np{world}_rank*.json")):
        cpu = json.loads(f.read_text())["cpu_s"][WARMUP_STEPS:]
        if cpu:
            per_rank.append(statistics.median(cpu))
    return sum(per_rank) / len(per_rank) if per_rank else float("nan")


def _independent_runs(n, features, data, tmp: Path, tag: str, gru_a, gru_b, batch, steps, threads,
                      timeout) -> float:
    """Summed sequences/s of ``n`` single-process runs started at once (no Horovod)."""
    from concurrent.futures import ThreadPoolExecutor

    from lpcnet import launcher

    def one(k):
        args = _train_args(features, data, tmp / f"{tag}_{k}", gru_a, gru_b, batch, steps)
        with open(tmp / f"{tag}_{k}.log", "w") as log:
            return launcher.launch(1, args, threads=threads, timeout=timeout, out=log, cwd=tmp / f"{tag}_{k}")

    for k in range(n):
        (tmp / f"{tag}_{k}").mkdir()
    with ThreadPoolExecutor(n) as pool:
        return sum(s["overall_stats"]["throughput_mean"] for s in pool.map(one, range(n)))


def _horovod_cycle(patched: bool) -> str:
    """How the ranks' Horovod background thread runs its cycles, as launched (docs/distributed.md)."""
    from lpcnet import launcher

    env = launcher.rank_environment(2)
    polls = f"cycles every {env['HOROVOD_CYCLE_TIME']} ms, busy or idle"
    if not patched:
        return polls + " (stock Horovod: no wake on enqueue)"
    if env["HOROVOD_WAKE_ON_ENQUEUE"] in ("", "0"):
        return polls + " (HOROVOD_WAKE_ON_ENQUEUE=0)"
    return (f"sleeps until a tensor is enqueued, then cycles every {env['HOROVOD_CYCLE_TIME']} ms "
            "while one waits (the kit's Horovod patch)")


def bench_scaling(*, gru_a: int = 64, gru_b: int = 16, batch: int = 8, steps: int = 60,
                  rounds: int = 3, nps=(1, 2), threads: int = 1, timeout: float = 900, features=None,
                  data=None, out=None, ceiling: bool = True) -> dict:
    """Horovod weak scaling on the CPU: sequences/s for each process count in ``nps``.

    Each run is ``lpcnet train`` on the real speech slice through
    :func:`lpcnet.launcher.launch` (``horovodrun --gloo`` for np > 1, with the launcher's
    per-rank threads, core pinning and Horovod settings) with ``batch`` sequences per rank,
    ``threads`` intra-op thread(s) per rank, one epoch of ``steps`` steps, noise and
    sparsification as in training; throughput is the seed's rule (mean of the last 40 steps,
    or of the second half). ``rounds`` > 1 runs the process counts alternately that many
    times and reports the round with the median efficiency (the lower of the two middle ones
    for an even count; the others are in ``rounds``).
    Prints one JSON line per run, the efficiency (throughput / (np x throughput at the
    smallest np); 0.9 or more is the target) and the per-step overhead (wall and CPU, ms)
    to ``out``. ``ceiling``: also run the largest np as that many independent single-process
    runs at once, each round (module docstring).
    """
    from lpcnet import launcher
    from lpcnet.bench.report import scaling_rows
    from lpcnet.callbacks import cpu_name
    from lpcnet.distributed import horovod_wakes_on_enqueue

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if features is None:
            features, data = training_pair(tmp)
        for rnd in range(max(1, int(rounds))):
            cpu_dir = tmp / f"cpu{rnd}"
            cpu_dir.mkdir()
            summaries = []
            for n in nps:
                args = _train_args(features, data, tmp / f"r{rnd}np{n}", gru_a, gru_b, batch, steps)
                with open(tmp / f"r{rnd}np{n}.log", "w") as log:
                    s = launcher.launch(n, args, threads=threads, timeout=timeout, out=log, cwd=tmp,
                                 env={CPU_DIR_ENV: str(cpu_dir)})
                summaries.append(s)
                line = {"benchmark": "scaling", "round": rnd, "processes": n, "threads_per_rank": threads,
                        "batch_per_rank": batch, **s["overall_stats"],
                        "cpu_s_per_step_per_rank": _cpu_per_step(cpu_dir, n)}
                print(json.dumps(line), file=out, flush=True)
            rows = scaling_rows(summaries)
            for r in rows:
                r["cpu_s_per_step_per_rank"] = _cpu_per_step(cpu_dir, r["processes"])
            by_world = sorted(summaries, key=lambda x: x["metadata"]["world_size"])
            res = {"rows": rows, "loss_per_step": {
                r["processes"]: s["metadata"].get("loss_per_step", []) for r, s in zip(rows, by_world)}}
            if ceiling and len(rows) > 1:
                n = rows[-1]["processes"]
                together = _independent_runs(n, features, data, tmp, f"r{rnd}ind{n}", gru_a, gru_b, batch,
                                             steps, threads, timeout)
                res["ceiling"] = together / (n * rows[0]["seq_per_s"] / rows[0]["processes"])
                print(json.dumps({"benchmark": "scaling", "round": rnd, "independent_processes": n,
                                  "throughput_sum": together}), file=out, flush=True)
            results.append(res)
    effs = [r["rows"][-1]["efficiency"] if r["rows"] else float("nan") for r in results]
    pick = sorted(range(len(effs)), key=lambda i: effs[i])[(len(effs) - 1) // 2]   # the lower median
    rows = results[pick]["rows"]
    first, last = rows[0], rows[-1]
    overhead_ms = 1000 * (last["s_per_step"] - first["s_per_step"])
    cpu_overhead_ms = 1000 * (last["cpu_s_per_step_per_rank"] - first["cpu_s_per_step_per_rank"])
    result = {"benchmark": "scaling", "gru_a": gru_a, "gru_b": gru_b, "batch_per_rank": batch,
              "steps": steps, "threads_per_rank": threads, "cpu": cpu_name(), "rows": rows,
              "efficiency": last["efficiency"], "overhead_ms_per_step": overhead_ms,
              "cpu_overhead_ms_per_step": cpu_overhead_ms,
              "ceiling": results[pick].get("ceiling"),
              "rounds": [{"efficiency": e, "rows": r["rows"], "ceiling": r.get("ceiling")}
                         for e, r in zip(effs, results)],
              "loss_per_step": results[pick]["loss_per_step"],
              "horovod_cycle": _horovod_cycle(horovod_wakes_on_enqueue())}
    print(f"scaling: GRU A {gru_a} / GRU B {gru_b}, batch {batch} per rank, {steps} steps, "
          f"{threads} intra-op thread(s) per rank, {result['cpu']}"
          + (f", median of {len(effs)} rounds" if len(effs) > 1 else ""), file=out)
    for r in rows:
        print(f"  np={r['processes']}  global batch {r['global_batch']:3d}  {r['seq_per_s']:7.2f} seq/s  "
              f"{r['s_per_step']:.3f} s/step  CPU {1000 * r['cpu_s_per_step_per_rank']:6.1f} ms/step/rank  "
              f"efficiency {r['efficiency']:.2f}", file=out)
    if len(effs) > 1:
        print(f"  efficiency of each round: {', '.join(f'{e:.2f}' for e in effs)}", file=out)
    print(f"  Horovod background thread: {result['horovod_cycle']}", file=out)
    print(f"  per-step overhead at np={last['processes']}: {overhead_ms:+.0f} ms wall, "
          f"{cpu_overhead_ms:+.1f} ms CPU per rank", file=out)
    if result["ceiling"]:
        each = ", ".join(f"{r['ceiling']:.2f}" for r in results if r.get("ceiling"))
        print(f"  hardware ceiling at np={last['processes']} ({last['processes']} independent "
              f"single-process runs at once): {result['ceiling']:.2f} of linear"
              + (f" (each round: {each})" if len(results) > 1 else "")
              + f"; Horovod reaches {result['efficiency'] / result['ceiling']:.2f} of it", file=out)
    print(f"  efficiency at np={last['processes']}: {result['efficiency']:.2f} of linear "
          f"(target >= 0.90)", file=out, flush=True)
    return result
