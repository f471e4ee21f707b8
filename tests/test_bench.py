"""lpcnet.bench: the registry and its command line (flags -> keyword arguments)."""

from __future__ import annotations

import argparse
import inspect

import pytest

from lpcnet.bench import BENCHMARKS
from lpcnet.bench import cli as bench_cli


def _parse(argv):
    p = argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    return p.parse_args(argv)


def test_every_registered_argument_is_a_keyword_of_its_function_with_a_flag():
    for name, bench in BENCHMARKS.items():
        params = inspect.signature(bench.function).parameters
        for kw in bench.arguments:
            assert kw in bench_cli.FLAGS, (name, kw)
            assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, (name, kw)


@pytest.mark.parametrize("argv,expected", [
    (["train", "--steps", "3", "--gru-a", "64", "--repeat", "2"], {"steps": 3, "gru_a": 64, "rounds": 2}),
    (["--steps", "3", "train", "--batch", "4"], {"steps": 3, "batch": 4}),        # flags before NAME too
    (["features", "--seconds", "2", "--repeat", "1", "--gru-a", "64"], {"seconds": 2.0, "repeat": 1}),
    (["scaling", "--repeat", "5", "--gru-b", "8", "--seconds", "3"], {"gru_b": 8, "rounds": 5}),  # --seconds: not its flag
    (["synth"], {}),                                                              # the function's defaults
])
def test_flags_become_the_benchmarks_keyword_arguments(argv, expected):
    assert bench_cli.benchmark_kwargs(_parse(argv)) == expected


def test_help_shows_each_benchmarks_default_from_its_signature():
    p = argparse.ArgumentParser()
    bench_cli.add_arguments(p)
    help_text = " ".join(p.format_help().split())
    assert "train 384, scaling 64" in help_text and "features 120.0, synth 120.0" in help_text


def test_bench_quality_prints_the_ratio(capsys):
    from lpcnet.bench import BENCHMARKS

    res = BENCHMARKS["quality"].function(gru_a=16, gru_b=8, batch=4, steps=6, every=2, rounds=1)
    assert res["plain_seq_s"] > 0 and res["eval_seq_s"] > 0
    assert res["ratio"] == pytest.approx(res["eval_seq_s"] / res["plain_seq_s"])
    assert res["evaluations_scored"] >= 1 and res["reports"][0].startswith("quality:")
    assert "with --eval-audio" in capsys.readouterr().out


def test_memory_benchmarks_measure_fresh_processes_on_real_speech(capsys):
    """synth-memory and eval-memory: three lengths each, a peak per fresh process, and the growth
    per minute printed; the longer eval pair needs more memory (it holds the two signals)."""
    synth = BENCHMARKS["synth-memory"].function(minutes=0.3, whole=False)
    assert [round(r["minutes"], 2) for r in synth["rows"]] == [0.01, 0.1, 0.3]
    assert all(10 < r["cli_peak_mb"] < 2000 for r in synth["rows"])
    ev = BENCHMARKS["eval-memory"].function(minutes=0.5)
    assert [round(r["minutes"], 2) for r in ev["rows"]] == [0.05, 0.15, 0.5]
    assert all(10 < r["peak_mb"] < 2000 and r["wall_s"] > 0 for r in ev["rows"])
    assert ev["rows"][-1]["peak_mb"] > ev["rows"][0]["peak_mb"]
    out = capsys.readouterr().out
    assert "lpcnet synth:" in out and "MB per minute" in out and "lpcnet eval:" in out
