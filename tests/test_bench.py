"""lpcnet.bench: the registry and its command line (flags -> keyword arguments)."""

from __future__ import annotations

import argparse
import inspect
import json

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


# --- bad flags and output paths: refused before a benchmark runs ------------------------------------
def _main(argv):
    from lpcnet.cli import main

    return main(["bench", *argv])


@pytest.mark.parametrize("flags", [["features", "--seconds", "nan"], ["synth-memory", "--minutes", "nan"],
                                   ["synth-memory", "--minutes", "-1"], ["features", "--repeat", "0"],
                                   ["train", "--repeat", "-2"], ["train", "--gru-a", "7"],
                                   ["train", "--batch", "0"], ["quality", "--every", "-1"],
                                   ["features", "--reference-seconds", "inf"]])
def test_impossible_numbers_are_refused_at_parse_time(flags, capsys):
    with pytest.raises(SystemExit) as exc:
        _main(flags)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and flags[1] in err[0], err


@pytest.fixture
def no_benchmark_run(monkeypatch):
    """The features benchmark replaced by one that records its calls (a refusal must come first)."""
    import functools

    calls = []
    bench = BENCHMARKS["features"]

    @functools.wraps(bench.function)                 # its signature: the flags' defaults
    def record(**kw):
        calls.append(kw)
        return {"benchmark": "x"}

    monkeypatch.setitem(BENCHMARKS, "features", bench._replace(function=record))
    return calls


def test_json_that_is_not_json_lines_or_a_folder_is_refused_before_the_run(no_benchmark_run, slice_s16,
                                                                             tmp_path, capsys):
    """--json naming a binary file the kit wrote (input.s16), a text file or a folder: one line,
    the benchmark not run, the file unchanged."""
    (tmp_path / "notes.txt").write_text("hello\n")
    before = slice_s16.read_bytes()
    for target, words in ((slice_s16, "is not a file of JSON lines"), (tmp_path / "notes.txt", "JSON lines"),
                          (tmp_path, "is a folder")):
        assert _main(["features", "--json", str(target)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--json {target}" in err[0] and words in err[0], err
    assert no_benchmark_run == [] and slice_s16.read_bytes() == before


def test_json_appends_one_line_to_json_lines(no_benchmark_run, tmp_path):
    out = tmp_path / "sub" / "results.jsonl"
    assert _main(["features", "--repeat", "2", "--json", str(out)]) == 0
    assert _main(["features", "--json", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"benchmark": "x"}] * 2
    assert no_benchmark_run == [{"repeat": 2}, {}]


def test_plot_that_is_not_a_png_path_is_refused_before_the_run(slice_s16, tmp_path, capsys):
    before = slice_s16.read_bytes()
    for target, words in ((slice_s16, "expected a .png file name"), (tmp_path, "expected a .png"),
                          (tmp_path / "d.png", "is a folder")):
        if target.suffix == ".png":
            target.mkdir()
        assert _main(["synth", "--seconds", "0.1", "--repeat", "1", "--plot", str(target)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--plot {target}" in err[0] and words in err[0], err
    assert slice_s16.read_bytes() == before and not (tmp_path.parent / f"{tmp_path.name}.png").exists()
