"""The code location of tests/support/ray_job_monitor.py: one job whose run stays running until it is killed."""

import time

from dagster import Definitions, in_process_executor, job, op


@op
def wait_a_while() -> None:
    """Sleeps (the run stays STARTED while the scenario looks at it, then its worker is killed)."""
    time.sleep(600)


# in process: the worker is the job's only process (a step process would start from the interpreter the
# scenario moves away)
@job(executor_def=in_process_executor)
def nap():
    wait_a_while()


defs = Definitions(jobs=[nap])
