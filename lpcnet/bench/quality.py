"""``lpcnet bench quality``: what scoring held-out speech beside training costs training.

Two short trainings of the same model on the same batches (the bundled slice), one plain and
one with ``--eval-audio`` (both ARCTIC utterances, every ``every`` steps), alternating ``rounds``
times so that other load on the machine affects both alike. Throughput is sequences per second
of the timed steps (the seed's rule of ``--use_performance``). Reported: the ratio of the two
throughputs, the evaluations scored and skipped, and the training-side cost of the callback.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

from lpcnet.bench.harness import SLICE, training_pair


def bench_quality(*, gru_a: int = 64, gru_b: int = 16, batch: int = 8, steps: int = 60,
                  every: int = 10, rounds: int = 2) -> dict:
    """Sequences/s without and with ``--eval-audio``; prints and returns them and their ratio."""
    from lpcnet.callbacks import cpu_name
    from lpcnet.config import ModelConfig, TrainConfig
    from lpcnet.train import train
    from lpcnet.train_eval import load_rows

    mcfg = ModelConfig(gru_a=gru_a, gru_b=gru_b)
    seq_s = {"plain": [], "eval": []}
    lines, scored = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        features, data = training_pair(Path(tmp))
        for r in range(rounds):
            for kind in ("plain", "eval"):
                run_dir = Path(tmp) / f"{kind}_{r}"
                tcfg = TrainConfig(features=str(features), data=str(data), output="b",
                                   model_dir=str(run_dir), batch_size=batch, epochs=1,
                                   steps_per_epoch=steps, seed=r, progress=False, use_performance=True,
                                   eval_audio=(str(SLICE),) if kind == "eval" else (),
                                   eval_every=every, eval_dnsmos=False)
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    res = train(mcfg, tcfg)
                seq_s[kind].append(res["summary"]["overall_stats"]["throughput_mean"])
                if kind == "eval":
                    lines += [ln for ln in out.getvalue().splitlines() if ln.startswith("quality:")]
                    scored += len({row["step"] for row in load_rows(run_dir)})
    plain, evald = float(np.median(seq_s["plain"])), float(np.median(seq_s["eval"]))
    result = {"cpu": cpu_name(), "gru_a": gru_a, "batch": batch, "steps": steps, "every": every,
              "plain_seq_s": plain, "eval_seq_s": evald, "ratio": evald / plain,
              "evaluations_scored": scored, "reports": lines}
    print(f"quality beside training, GRU A {gru_a}, batch {batch}, {steps} steps x {rounds} rounds, "
          f"--eval-every {every}, 2 utterances ({result['cpu']}):")
    print(f"  plain {plain:.2f} seq/s, with --eval-audio {evald:.2f} seq/s: ratio {result['ratio']:.2f}x "
          f"({scored} evaluations scored in all)")
    for ln in lines:
        print("  " + ln)
    return result
