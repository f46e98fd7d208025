"""What the benchmarks share: the machine-and-date line, medians of repeated timings, ratios, re-running a module.

Every result in docs/PERFORMANCE.md is a ratio against a baseline measured in the same
run, with the machine and the date it ran on: `machine_line()` prints them the same way
in every benchmark (`meta()` for JSON output), `median_time` times a call, `ratio`
prints value / baseline.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """This machine in one phrase: processor, CPUs, OS, Python."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def utc_now() -> str:
    """The date and time, to the minute, in UTC."""
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def machine_line(*extra: str) -> str:
    """`machine: <machine>; <extra...>; <date>`: the line every benchmark prints with its results."""
    return "; ".join([f"machine: {machine()}", *extra, utc_now()])


def meta(**extra) -> dict:
    """The machine and the date for a JSON result."""
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
            "platform": platform.platform(), "cpus": os.cpu_count(), **extra}


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """The median wall time (s) of `repeat` calls of `fn`."""
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times)


def ratio(value: float, baseline: float, digits: int = 2) -> str:
    """`value / baseline` as text such as `1.73x` ("n/a" when the baseline is 0)."""
    return f"{value / baseline:.{digits}f}x" if baseline else "n/a"


def module_command(module: str, *args: str) -> list[str]:
    """The command that runs benchmark `module` (e.g. benchmarks.bench_detect) in a fresh interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `module_command(module, *args)` from the repository root (where `egoclean` and `tests` import);
    keyword arguments as subprocess.run's."""
    return subprocess.run(module_command(module, *args), cwd=ROOT, **kwargs)
