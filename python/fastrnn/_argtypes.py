"""argparse ``type=`` functions for the command line: each parses one value or raises
ArgumentTypeError, which argparse turns into a usage error naming the option."""

import argparse
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

_N = TypeVar("_N", int, float)


def _parse(text: str, convert: Callable[[str], _N], expected: str) -> _N:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def _checked(text: str, convert: Callable[[str], _N], expected: str, ok: Callable[[_N], bool]) -> _N:
    value = _parse(text, convert, expected)
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _checked(text, int, "a positive integer", lambda n: n >= 1)


def positive_number(text: str) -> float:
    return _checked(text, float, "a number > 0", lambda x: x > 0)


def nonnegative_number(text: str) -> float:
    return _checked(text, float, "a number >= 0", lambda x: x >= 0)


def fraction(text: str) -> float:
    return _checked(text, float, "a fraction in (0, 1)", lambda x: 0 < x < 1)


def probability(text: str) -> float:
    return _checked(text, float, "a probability in [0, 1)", lambda x: 0 <= x < 1)


def comma_list(choices: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list (repeatable flags add up), each in ``choices``."""

    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"empty list of {what}")
        for v in values:
            if v not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what[:-1]} {v!r}; choose from {', '.join(choices)}"
                )
        return values

    return parse


def merged_lists(lists: list[list[str]] | None, default: Sequence[str]) -> list[str]:
    """The values of a repeatable comma_list option in first-seen order, or ``default`` if not given."""
    if not lists:
        return list(default)
    out: list[str] = []
    for values in lists:
        out += [v for v in values if v not in out]
    return out
