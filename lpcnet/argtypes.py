"""Types of command-line values, shared by every command's parser.

Each is an ``argparse`` ``type=`` function: it returns the converted value or raises
``argparse.ArgumentTypeError``, which the kit's parsers print as one line (exit 2). They
refuse what ``float()``/``int()`` let through: NaN, infinities, and values outside the range
a flag can mean (a count of 0, a negative duration).
"""

from __future__ import annotations

import argparse
import math
import numbers
from typing import Callable


def finite_float(text: str) -> float:
    """Any finite number (no NaN, no infinity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def whole_number(text: str) -> int:
    """Any whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def within(convert: Callable[[str], float], ok: Callable[[float], bool], expected: str, name: str):
    """``convert``, then refuse a value for which ``ok`` is false ("expected <expected>")."""
    def parse(text: str):
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = f"{expected[0].upper()}{expected[1:]}."
    return parse


nonnegative_float = within(finite_float, lambda v: v >= 0, "a number >= 0", "nonnegative_float")
positive_float = within(finite_float, lambda v: v > 0, "a number > 0", "positive_float")
unit_interval = within(finite_float, lambda v: 0 <= v <= 1, "a number from 0 to 1", "unit_interval")
correlation = within(finite_float, lambda v: -1 <= v <= 1, "a correlation from -1 to 1", "correlation")
nonnegative_int = within(whole_number, lambda v: v >= 0, "a whole number >= 0", "nonnegative_int")
positive_int = within(whole_number, lambda v: v >= 1, "a whole number >= 1", "positive_int")


def check_whole(value, name: str, minimum: int = 1) -> int:
    """The same rule for a value given from Python (an API argument, not a flag's text): ``value``
    as an int when it is a whole number >= ``minimum``, else LpcnetError in one line naming
    ``name``; a float, a string or a bool is refused, not rounded."""
    from lpcnet.errors import LpcnetError

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise LpcnetError(f"{name}: expected a whole number >= {minimum}, got {value!r}")
    return int(value)
