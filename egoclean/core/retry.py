"""Bounded retries: exponential waits with a cap and jitter, a number of attempts and a deadline.

EgoClean retries in five places: dataset listings and reads (egoclean.ingest.source), the
streamed ranged read that resumes where a dropped connection left off (the same), a DuckDB
file another process holds and a DuckLake commit that conflicted (egoclean.store), and a
remote data root (egoclean.core.object_store). Each decides which failures are worth
another try and turns giving up into its own error; how long to wait and when to stop are
this module's:

    policy = Backoff(attempts=5, base_sec=0.5, cap_sec=8.0)
    call(fetch, policy, retry_if=IsTransient)                # a plain call
    tries = policy.start()                                   # a loop that keeps its own state
    while ...:
        try: ...
        except Transient as e: tries.failed(e)               # waits, or raises GaveUp

After the n-th failure the wait is `base_sec * 2**(n-1)`, at most `cap_sec`, drawn from
[(1 - jitter) * w, w] so that clients that failed together do not retry in lockstep.

Why not tenacity (installed here only as a dependency of dagster-ray, the cluster extra):
the streamed read retries inside a generator and resumes at its byte position, which is
not a call tenacity can wrap, and its `for attempt in Retrying(): with attempt:` form
swallows every BaseException raised in the block (GeneratorExit of a closed generator
included); each caller's message names the attempts made and the seconds spent, which
tenacity hands over wrapped in RetryError; and the store's waits are cut to its deadline.
What is left to write is the few lines below, tested in tests/core/test_retry.py.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError

T = TypeVar("T")
# A hook called before each wait: (the failure, failures so far, the wait in seconds); for logging.
OnRetry = Callable[[BaseException, int, float], None]


class GaveUp(Exception):
    """The tries ran out: the last failure (`error`), the tries made and the seconds since the first.

    Not an EgoCleanError: each caller turns it into its own (SourceError, StoreBusyError, ...)."""

    def __init__(self, error: BaseException, attempts: int, elapsed_sec: float):
        super().__init__(f"gave up after {attempts} attempt(s) in {elapsed_sec:.1f} s: {error}")
        self.error, self.attempts, self.elapsed_sec = error, attempts, elapsed_sec


@dataclass(frozen=True)
class Backoff:
    """How a retried operation waits between tries and when it stops."""

    attempts: int  # tries in all, the first included (>= 1)
    base_sec: float  # the wait after the first failure, before jitter (>= 0)
    cap_sec: float  # no wait is longer (>= 0)
    jitter: float = defaults.RETRY_JITTER  # 0: exact waits; 1: anywhere in [0, w]
    deadline_sec: float | None = None  # no new try once this long has passed since the first; waits end by it

    def __post_init__(self) -> None:
        ok = (isinstance(self.attempts, int) and self.attempts >= 1 and self.base_sec >= 0 and self.cap_sec >= 0
              and 0 <= self.jitter <= 1 and (self.deadline_sec is None or self.deadline_sec >= 0))
        if not ok:
            raise InvalidInputError(
                f"retry settings: attempts={self.attempts!r} (>= 1), base_sec={self.base_sec!r} (>= 0), "
                f"cap_sec={self.cap_sec!r} (>= 0), jitter={self.jitter!r} (0..1), "
                f"deadline_sec={self.deadline_sec!r} (>= 0 or None)")

    def wait(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait after the `failures`-th failure (1, 2, ...), jittered, before any deadline cut."""
        w = min(self.cap_sec, self.base_sec * 2.0 ** min(failures - 1, 1000))  # 2.0 ** 1024 overflows
        return (rng or random).uniform((1.0 - self.jitter) * w, w) if self.jitter else w

    def start(self, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
              rng: random.Random | None = None) -> "Attempts":
        """The state of one operation under this policy, its clock starting now (sleep, clock, rng: for tests)."""
        return Attempts(self, sleep, clock, rng)


class Attempts:
    """One retried operation in progress: counts its failures, waits between tries, gives up."""

    def __init__(self, policy: Backoff, sleep: Callable[[float], None], clock: Callable[[], float],
                 rng: random.Random | None):
        self.policy, self._sleep, self._clock, self._rng = policy, sleep, clock, rng
        self.failures = 0
        self._start = clock()

    @property
    def elapsed_sec(self) -> float:
        return self._clock() - self._start

    def failed(self, error: BaseException, on_retry: OnRetry | None = None) -> None:
        """Count a failed try, then wait before the next one; GaveUp (from `error`) when none is left."""
        self.failures += 1
        elapsed = self.elapsed_sec
        deadline = self.policy.deadline_sec
        left = None if deadline is None else deadline - elapsed
        if self.failures >= self.policy.attempts or (left is not None and left <= 0):
            raise GaveUp(error, self.failures, elapsed) from error
        delay = self.policy.wait(self.failures, self._rng)
        if left is not None:
            delay = min(delay, left)
        if on_retry is not None:
            on_retry(error, self.failures, delay)
        self._sleep(delay)


def call(fn: Callable[[], T], policy: Backoff,
         retry_if: Callable[[BaseException], bool] | type[BaseException] | tuple[type[BaseException], ...],
         on_retry: OnRetry | None = None, **start) -> T:
    """`fn()`, tried again while it raises an Exception `retry_if` accepts (a predicate, or exception
    types); GaveUp when the tries run out. Any other exception passes through at once. `start`:
    Backoff.start's keywords."""
    types = retry_if if isinstance(retry_if, (type, tuple)) else None
    tries = policy.start(**start)
    while True:
        try:
            return fn()
        except Exception as e:
            if not (isinstance(e, types) if types is not None else retry_if(e)):
                raise
            tries.failed(e, on_retry)
