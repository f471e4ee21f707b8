"""``lpcnet bench scaling``: Horovod weak scaling on the CPU, sequences/s at np = 1 and 2 (docs/benchmarks.md)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from lpcnet.bench.harness import training_pair


def _train_args(features, data, model_dir, gru_a, gru_b, batch, steps) -> list:
    """``lpcnet train`` flags of one scaling run (noise and sparsification as in training)."""
    return ["--features", str(features), "--data", str(data), "--model_dir", str(model_dir),
            "--output", "bench", "--grua-size", str(gru_a), "--grub-size", str(gru_b),
            "--batch_size", str(batch), "--epochs", "1", "--steps_per_epoch", str(steps),
            "--seed", "0", "--use_performance", "True", "--no-progress"]


def bench_scaling(*, gru_a: int = 64, gru_b: int = 16, batch: int = 8, steps: int = 20,
                  nps=(1, 2), threads: int = 1, timeout: float = 600, features=None, data=None,
                  out=None) -> dict:
    """Horovod weak scaling on the CPU: sequences/s for each process count in ``nps``.

    Each run is ``lpcnet train`` on the real speech slice through
    :func:`lpcnet.distributed.launch` (``horovodrun --gloo`` for np > 1) with ``batch``
    sequences per rank, ``threads`` intra-op thread(s) per rank, one epoch of ``steps`` steps,
    noise and sparsification as in training; throughput is the seed's rule (mean of the last
    40 steps, or of the second half). Prints one JSON line per run and the efficiency
    (throughput / (np x throughput at the smallest np); 0.9 or more is the target) to ``out``.
    """
    from lpcnet import distributed as D
    from lpcnet.bench.report import scaling_rows
    from lpcnet.callbacks import cpu_name

    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if features is None:
            features, data = training_pair(tmp)
        for n in nps:
            args = _train_args(features, data, tmp / f"np{n}", gru_a, gru_b, batch, steps)
            with open(tmp / f"np{n}.log", "w") as log:
                s = D.launch(n, args, threads=threads, timeout=timeout, out=log, cwd=tmp)
            summaries.append(s)
            line = {"benchmark": "scaling", "processes": n, "threads_per_rank": threads,
                    "batch_per_rank": batch, **s["overall_stats"]}
            print(json.dumps(line), file=out, flush=True)
    rows = scaling_rows(summaries)
    by_world = sorted(summaries, key=lambda x: x["metadata"]["world_size"])
    result = {"benchmark": "scaling", "gru_a": gru_a, "gru_b": gru_b, "batch_per_rank": batch,
              "steps": steps, "threads_per_rank": threads, "cpu": cpu_name(), "rows": rows,
              "efficiency": rows[-1]["efficiency"] if rows else float("nan"),
              "loss_per_step": {r["processes"]: s["metadata"].get("loss_per_step", [])
                                for r, s in zip(rows, by_world)}}
    print(f"scaling: GRU A {gru_a} / GRU B {gru_b}, batch {batch} per rank, {steps} steps, "
          f"{threads} intra-op thread(s) per rank, {result['cpu']}", file=out)
    for r in rows:
        print(f"  np={r['processes']}  global batch {r['global_batch']:3d}  {r['seq_per_s']:7.2f} seq/s  "
              f"{r['s_per_step']:.3f} s/step  efficiency {r['efficiency']:.2f}", file=out)
    print(f"  efficiency at np={rows[-1]['processes']}: {result['efficiency']:.2f} of linear "
          f"(target >= 0.90)", file=out, flush=True)
    return result
