"""Bounded JSON input: the one parser for the small JSON files EgoClean reads.

Sidecars, intrinsics, embedding meta files and cached shard indexes are a few hundred
bytes; a hostile or damaged one must give a one-line error naming the file, never a
traceback, a stalled process or a value that breaks later code. So: a size cap, a
nesting cap (Python's parser recurses: thousands of `[` end in RecursionError), a
digit cap on integers (Python refuses to convert more than 4300 digits, and no field
here needs more than a few), and, unless asked, no NaN/Infinity (not JSON; they
would be printed back as non-standard JSON).
"""

from __future__ import annotations

import json
import math
from typing import Any

from egoclean.core.errors import InvalidInputError

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_INT_DIGITS = 40


def _depth(text: str, limit: int) -> int | None:
    """The first position where brackets nest deeper than `limit` (outside strings), or None."""
    depth, in_str, esc = 0, False, False
    for i, c in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            if depth > limit:
                return i
        elif c in "]}":
            depth -= 1
    return None


def loads(
    data: bytes | str,
    what: str,
    error: type[Exception] = InvalidInputError,
    max_bytes: int = MAX_BYTES,
    finite: bool = True,
) -> Any:
    """Parse `data` (UTF-8) as JSON; any problem is `error("<what>: <problem>")`.

    `finite=False` lets NaN and +/-Infinity through for callers that check their
    fields themselves and name the field (intrinsics)."""
    size = len(data)
    if size > max_bytes:
        raise error(f"{what}: {size} bytes, more than the {max_bytes} a JSON file of this kind may have")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{what}: not valid UTF-8 ({e})") from None
    # "[" * 100000 cannot be parsed without deep recursion: refuse it from a cheap scan.
    if data.count("[") + data.count("{") > MAX_DEPTH:
        at = _depth(data, MAX_DEPTH)
        if at is not None:
            raise error(f"{what}: nested more than {MAX_DEPTH} levels deep (at character {at})")

    def parse_int(s: str) -> int:
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise error(f"{what}: an integer with {len(s.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
        return int(s)

    def parse_float(s: str) -> float:
        v = float(s)
        if finite and not math.isfinite(v):
            raise error(f"{what}: number {s[:40]!r} is out of range")
        return v

    def parse_constant(s: str) -> float:
        if finite:
            raise error(f"{what}: {s} is not a JSON number (NaN and Infinity are not allowed here)")
        return float(s)

    try:
        return json.loads(data, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except json.JSONDecodeError as e:
        raise error(f"{what}: not valid JSON ({e})") from None
    except RecursionError:
        raise error(f"{what}: nested too deeply") from None
    except ValueError as e:  # int() limits and the like; `error` may itself be a ValueError
        if isinstance(e, error):
            raise
        raise error(f"{what}: not valid JSON ({e})") from None


def dumps(obj: Any, **kw: Any) -> str:
    """Standard JSON out: NaN and Infinity become null (json.dumps would write NaN)."""
    return json.dumps(_finite(obj), allow_nan=False, **kw)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
