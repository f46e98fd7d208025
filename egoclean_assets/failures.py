"""EgoClean's errors as what Dagster shows first: one line naming the input and the problem.

Dagster wraps an exception raised in an op in `DagsterExecutionStepExecutionError`
("Error occurred while executing op ...") and shows that, with its stack trace, on the run
page's first failure row; EgoClean's own line came third, after "The above exception was
caused by". `reports_failures` wraps an asset's, check's or op's body so that an
`EgoCleanError` leaves it as a `dagster.Failure` whose description is that line: the
STEP_FAILURE row, the RUN_FAILURE row (which carries the first step failure's error) and a
check's "Execution failed" then start with it, and the original traceback stays attached
as the failure's cause for those who expand it. A busy store (`StoreBusyError`) stays
retryable under the step's RetryPolicy; any other EgoClean error is bad input a retry
cannot fix. Sensors raise `TickFailure` (a `DagsterError`, which Dagster's user-code
boundary passes through unwrapped) so a failed tick's error is the same line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Callable, Iterator, TypeVar

from dagster import DagsterError, Failure

from egoclean.core.errors import EgoCleanError, StoreBusyError
from egoclean.core.secrets import redact

F = TypeVar("F", bound=Callable)


def one_line(e: BaseException) -> str:
    """`ErrorClass: message` on one line, secrets redacted."""
    return f"{type(e).__name__}: {' '.join(redact(str(e)).split())}"


def failure(e: EgoCleanError) -> Failure:
    """The dagster.Failure that reports `e` (raise it `from e` to keep the traceback)."""
    return Failure(description=one_line(e), allow_retries=isinstance(e, StoreBusyError))


def reports_failures(fn: F) -> F:
    """Decorate an asset, check or op body (under @asset / @asset_check / @op): EgoCleanError -> one-line Failure."""

    if inspect.isgeneratorfunction(fn):  # a body that yields outputs raises while Dagster iterates it
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except EgoCleanError as e:
                raise failure(e) from e

        return steps  # type: ignore[return-value]

    @functools.wraps(fn)  # Dagster reads the parameters (context, inputs, resources) through __wrapped__
    def body(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EgoCleanError as e:
            raise failure(e) from e

    return body  # type: ignore[return-value]


class TickFailure(DagsterError):
    """A sensor tick that failed on an EgoClean error; its message is the error's one line."""


@contextlib.contextmanager
def tick_failures() -> Iterator[None]:
    """Around a sensor's body: an EgoCleanError fails the tick with its one line first."""
    try:
        yield
    except EgoCleanError as e:
        raise TickFailure(one_line(e)) from e
