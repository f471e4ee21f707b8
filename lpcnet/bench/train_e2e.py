"""``lpcnet bench train-e2e``: training sequences/s of the end-to-end variant vs the standard model.

Both trained by ``LPCNetModel``'s step on the same speech (the standard model on ``dump-data
-train`` data, the end-to-end one on ``dump-data --end2end -train`` data of the same seed),
interleaved as :func:`lpcnet.bench.train.bench_train` does. The standard model takes the fast
path (GRU input fold, native output head); the end-to-end model runs its functional graph
(continuous codes, TensorFlow tree and loss) with the native GRU loops. Results:
docs/benchmarks.md and docs/training.md (End-to-end variant).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from lpcnet.bench.harness import SLICE

#: Variants: name -> (end-to-end?, dtype policy).
VARIANTS = {"standard_fp32": (False, None), "end2end_fp32": (True, None),
            "end2end_amp_bf16": (True, "mixed_bfloat16")}
#: Ratios printed: name -> (numerator, denominator).
RATIOS = {"end2end_over_standard_fp32": ("end2end_fp32", "standard_fp32"),
          "end2end_bf16_over_fp32": ("end2end_amp_bf16", "end2end_fp32")}


def _pairs(workdir: Path) -> dict:
    """{end2end?: (features.f32, data.u8)} of the bundled training utterance, same seed."""
    from lpcnet.data import prepare
    from lpcnet.features import dump_data

    prepare([SLICE / "arctic_a0009.wav"], workdir / "input.s16", progress=False)
    out = {}
    for e2e in (False, True):
        f, d = workdir / f"features_{int(e2e)}.f32", workdir / f"data_{int(e2e)}.u8"
        dump_data(workdir / "input.s16", f, d, mode="train", seed=0, progress=False, end2end=e2e)
        out[e2e] = (f, d)
    return out


def bench_train_e2e(*, gru_a: int = 256, gru_b: int = 16, batch: int = 16, steps: int = 12,
                    warmup: int = 2, rounds: int = 3, variants=tuple(VARIANTS)) -> dict:
    """Median s/step (wall and process CPU) of the variants, ``rounds`` interleaved rounds of
    ``steps / rounds`` timed steps after ``warmup`` untimed ones each; prints and returns them
    with the ratios (wall: ``ratios``; CPU: ``cpu_ratios``)."""
    import keras

    from lpcnet.bench.train import _fit_times
    from lpcnet.callbacks import cpu_name
    from lpcnet.config import ModelConfig
    from lpcnet.data import TrainingLoader
    from lpcnet.model import build_lpcnet, compile_lpcnet, make_optimizer

    times: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = _pairs(Path(tmp))
        models, loaders = {}, {}
        for name in variants:
            e2e, policy = VARIANTS[name]
            keras.utils.set_random_seed(0)
            model = build_lpcnet(ModelConfig(gru_a=gru_a, gru_b=gru_b, end2end=e2e), dtype_policy=policy,
                                 seed=0).model
            compile_lpcnet(model, make_optimizer())
            loaders[name] = TrainingLoader(*pairs[e2e], batch, seed=0, end2end=e2e)
            _fit_times(model, loaders[name], warmup)
            models[name] = model
            times[name] = ([], [])
        names, per_round = list(models), max(1, steps // rounds)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                wall, cpu = _fit_times(models[name], loaders[name], per_round)
                times[name][0].extend(wall)
                times[name][1].extend(cpu)
    results = {name: {"seq_per_s": float(batch / np.median(w)), "s_per_step_median": float(np.median(w)),
                      "cpu_s_per_step_median": float(np.median(c)), "steps": len(w)}
               for name, (w, c) in times.items()}
    ratios = {k: results[n]["seq_per_s"] / results[d]["seq_per_s"]
              for k, (n, d) in RATIOS.items() if n in results and d in results}
    cpu_ratios = {k: results[d]["cpu_s_per_step_median"] / results[n]["cpu_s_per_step_median"]
                  for k, (n, d) in RATIOS.items() if n in results and d in results}
    out = {"benchmark": "train-e2e", "gru_a": gru_a, "gru_b": gru_b, "batch": batch, "steps": steps,
           "rounds": rounds, "warmup": warmup, "device": cpu_name(), "variants": results,
           "ratios": ratios, "cpu_ratios": cpu_ratios}
    print(f"train-e2e: GRU A {gru_a} / GRU B {gru_b}, batch {batch}, {steps} timed steps in {rounds} "
          f"interleaved rounds, {out['device']}")
    for name, r in results.items():
        print(f"  {name:18s} {r['seq_per_s']:7.2f} seq/s  median {r['s_per_step_median']:6.3f} s/step "
              f"(CPU {r['cpu_s_per_step_median']:.3f} s/step)")
    for key, value in ratios.items():
        print(f"  {key}: {value:.2f}x wall, {cpu_ratios[key]:.2f}x CPU time")
    return out
