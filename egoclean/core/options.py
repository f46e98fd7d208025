"""Numbers from the command line and the environment: bounded, finite, named in one-line errors.

`argparse`'s plain `int` and `float` take `nan`, `inf`, `-5` and integers of thousands
of digits, and `int(os.environ[...])` fails with a traceback; each option and variable
here states the range that makes sense, and anything else is refused before work starts.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable, Mapping

from egoclean.core.errors import InvalidInputError

# Longer than any sensible number; Python's int() itself refuses more than 4300 digits.
MAX_CHARS = 40
_DECIMAL = set("0123456789.eE+-")


def _show(text: str) -> str:
    return repr(text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "...")


def whole(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number in [lo, hi] (ASCII digits, optional sign)."""

    def parse(text: str) -> int:
        t = text.strip()
        digits = t[1:] if t[:1] in "+-" else t
        if not (len(t) <= MAX_CHARS and digits.isascii() and digits.isdigit()) or not lo <= int(t) <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {_show(text)}")
        return int(t)

    parse.__name__ = "whole number"
    return parse


def number(lo: float, hi: float, lo_open: bool = False) -> Callable[[str], float]:
    """A finite number in [lo, hi] (or (lo, hi] with lo_open)."""

    def parse(text: str) -> float:
        t = text.strip()
        # Plain decimal notation only: float() also takes "1_000", "nan", "infinity" and
        # non-ASCII digits.
        plain = 0 < len(t) <= MAX_CHARS and set(t) <= _DECIMAL and any(c.isdigit() for c in t)
        try:
            v = float(t) if plain else math.nan
        except ValueError:
            v = math.nan
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi
        if not ok:
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(f"expected a number in {left}{lo:g}, {hi:g}], got {_show(text)}")
        return v

    parse.__name__ = "number"
    return parse


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: `PROG: error: MESSAGE (see PROG --help)`."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# DuckDB's units of memory (its `memory_limit` setting): powers of 1000 and of 1024.
SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)\s*([a-z]{1,3})", re.IGNORECASE)
# Less than this cannot run a query at all (DuckDB's blocks are 256 KiB, a few per thread).
MIN_MEMORY_BYTES = 16 * 2**20


def memory_size(text: str) -> str:
    """A DuckDB memory size (`2GiB`, `500MB`) of at least MIN_MEMORY_BYTES, as DuckDB takes it (`2GiB`)."""
    t = text.strip()
    m = _SIZE.fullmatch(t) if len(t) <= MAX_CHARS else None
    if not m or m[2].lower() not in SIZE_UNITS or float(m[1]) * SIZE_UNITS[m[2].lower()] < MIN_MEMORY_BYTES:
        raise argparse.ArgumentTypeError(
            f"expected a size of memory of at least 16MiB such as 2GiB or 500MB (units: B, KB, MB, GB, TB, KiB, "
            f"MiB, GiB, TiB), got {_show(text)}")
    return f"{m[1]}{m[2]}"


def env_memory(env: Mapping[str, str], name: str, default: str) -> str:
    """The memory size in environment variable `name` (unset or empty: `default`); InvalidInputError
    naming the variable when it is not one (see memory_size)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return memory_size(raw)
    except argparse.ArgumentTypeError as e:
        raise InvalidInputError(f"environment variable {name}: {e}") from None


def env_whole(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """The whole number in environment variable `name` (unset or empty: `default`);
    InvalidInputError naming the variable when it is not one in [lo, hi]."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return whole(lo, hi)(raw)
    except argparse.ArgumentTypeError as e:
        raise InvalidInputError(f"environment variable {name}: {e}") from None
