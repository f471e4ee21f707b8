"""lpcnet.argtypes: numeric flags refuse NaN, infinities and out-of-range values in one line (exit 2)."""

import pytest

from lpcnet import argtypes as A
from lpcnet.cli import OneLineErrorParser


@pytest.mark.parametrize("kind,good,bad", [
    (A.finite_float, {"-2.5": -2.5, "0": 0.0}, ["nan", "inf", "-inf", "x"]),
    (A.nonnegative_float, {"0": 0.0, "3e2": 300.0}, ["-1e-9", "nan"]),
    (A.positive_float, {"0.25": 0.25}, ["0", "-3", "inf"]),
    (A.unit_interval, {"0": 0.0, "1": 1.0, "0.5": 0.5}, ["1.01", "-0.1", "nan"]),
    (A.nonnegative_int, {"0": 0, "7": 7}, ["-1", "1.5", "nan"]),
    (A.positive_int, {"1": 1}, ["0", "-2", "2.0"]),
    (A.correlation, {"-1": -1.0, "0.9": 0.9}, ["1.5", "-2", "nan"]),
])
def test_values_in_range_parse_and_the_rest_are_one_line_usage_errors(kind, good, bad, capsys):
    parser = OneLineErrorParser(prog="lpcnet x")
    parser.add_argument("--value", type=kind)
    for text, value in good.items():
        assert parser.parse_args(["--value", text]).value == value
    for text in bad:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([f"--value={text}"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--value" in err[0] and repr(text) in err[0], err


def test_python_values_follow_the_same_rule():
    from lpcnet.errors import LpcnetError

    assert A.check_whole(3, "n") == 3 and A.check_whole(0, "n", minimum=0) == 0
    import numpy as np
    assert A.check_whole(np.int64(2), "n") == 2
    for bad in (0, -1, 1.0, "2", True, float("nan")):
        with pytest.raises(LpcnetError, match=r"^n: expected a whole number >= 1, got "):
            A.check_whole(bad, "n")
