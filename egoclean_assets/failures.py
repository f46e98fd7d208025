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

A check that can no longer run because its asset (or one upstream of it) failed in the
run would read "Execution failed" (Dagster 1.13 resolves a planned check of a failed run
so, and has no skipped result a run can record): a user reads that the check failed. So
an asset body that fails on such an error first records each of the run's planned checks
on its assets and the assets below them as not evaluated, with the failure's line as the
reason (severity WARN: the data was not judged bad, it was not made), as the Ray mode's
batched step records a failed clip's checks.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Callable, Iterator, TypeVar

from dagster._core.errors import DagsterInvalidPropertyError
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetExecutionContext,
    DagsterError,
    DagsterEventType,
    Failure,
)

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
                raise _failed(args, failure(e)) from e
            except Failure as f:
                _failed(args, f)
                raise

        return steps  # type: ignore[return-value]

    @functools.wraps(fn)  # Dagster reads the parameters (context, inputs, resources) through __wrapped__
    def body(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EgoCleanError as e:
            raise _failed(args, failure(e)) from e
        except Failure as f:
            _failed(args, f)
            raise

    return body  # type: ignore[return-value]


def _failed(args: tuple, f: Failure) -> Failure:
    """`f`, after an asset body's final failure recorded the checks it leaves unrun (see the module)."""
    context = args[0] if args else None
    if isinstance(context, AssetExecutionContext) and not f.allow_retries:
        record_unevaluated_checks(context, f.description or "")
    return f


def record_unevaluated_checks(context: AssetExecutionContext, why: str) -> int:
    """Record the run's planned checks on the step's assets and every asset below them as not
    evaluated (passed False, severity WARN, `why` in the description); returns how many.

    A step's own checks (a multi-asset's check_specs, as Ray mode's clip_batch has) are left
    to it: it records them itself, per clip."""
    try:
        graph = context.job_def.asset_layer.asset_graph
    except DagsterInvalidPropertyError:  # the asset invoked directly, outside a run: no check was planned
        return 0
    below, todo = set(context.assets_def.keys), list(context.assets_def.keys)
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child not in below:
                below.add(child)
                todo.append(child)
    step = ", ".join(k.to_user_string() for k in context.assets_def.keys)
    n = 0
    for record in context.instance.all_logs(context.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED):
        planned = record.dagster_event.event_specific_data
        if planned.asset_key not in below or planned.asset_check_key in context.assets_def.check_keys:
            continue
        subset = planned.partitions_subset
        for key in subset.get_partition_keys() if subset is not None else [None]:
            target = planned.asset_key.to_user_string() + (f" of {key}" if key else "")
            context.log_event(AssetCheckEvaluation(
                asset_key=planned.asset_key, check_name=planned.check_name, passed=False,
                severity=AssetCheckSeverity.WARN, partition=key,
                description=f"not evaluated: {target} was not produced ({step} failed: {why})",
                metadata={"result": "not evaluated", "failed_asset": step, "error": why}))
            n += 1
    return n


class TickFailure(DagsterError):
    """A sensor tick that failed on an EgoClean error; its message is the error's one line."""


@contextlib.contextmanager
def tick_failures() -> Iterator[None]:
    """Around a sensor's body: an EgoCleanError fails the tick with its one line first."""
    try:
        yield
    except EgoCleanError as e:
        raise TickFailure(one_line(e)) from e
