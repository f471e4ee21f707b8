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
