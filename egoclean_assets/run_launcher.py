"""The run launcher of dagster_home/dagster.yaml: Dagster's default one, plus a worker health check.

Dagster's DefaultRunLauncher starts each run in a process of the local code server but
cannot tell run monitoring whether that process is still alive, so a run whose worker
was killed (SIGKILL, the OOM killer, a crash of the code server with it) stays STARTED
for ever and keeps its `gpu` / `duckdb` pool slots: every later run of those steps waits.
This launcher answers run monitoring's health check from the process id the run worker
logs when it starts ("Executing steps in process (pid: N)"): no such process (or a
zombie) means the worker died, so the run monitoring daemon marks the run failed and,
`free_slots_after_run_end_seconds` later, frees its slots (see docs/RELIABILITY.md).

The check is local: it is right for the code servers `dagster dev` starts on this
machine (workspace.yaml), which is what DefaultRunLauncher launches into here.

It also refuses, before any process starts, a run for a partition key that is not a clip
id: Dagster's "Add a partition" field takes any text and calls no user code, so the
launch is the earliest point to say so (the run fails with that one line).
"""

from __future__ import annotations

import os

from dagster import DagsterEventType, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus

from egoclean.core.errors import ClipIdError
from egoclean.core.ids import ClipId

PARTITION_TAG = "dagster/partition"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            # state is the field after the parenthesised command name
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class MonitoredRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check (by their logged pid)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        key = run.tags.get(PARTITION_TAG)
        if key is not None:  # every partitioned EgoClean job is partitioned by clip id
            try:
                ClipId.parse(key)
            except ClipIdError as e:
                self._instance.report_run_failed(
                    run, f"partition key {key!r} is not a clip id: {e}; delete it (Partitions tab of any asset) "
                    "and add the clip's id")
                return
        super().launch_run(context)

    def run_worker_pid(self, run_id: str) -> int | None:
        """The pid the run's worker logged when it started executing, or None (not yet)."""
        for record in self._instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            data = record.dagster_event.engine_event_data if record.dagster_event else None
            pid = data.metadata.get("pid") if data is not None and data.metadata else None
            if pid is not None:
                return int(getattr(pid, "value", getattr(pid, "text", pid)))
        return None

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid = self.run_worker_pid(run.run_id)
        if pid is None:
            # Not logged yet (the worker is starting): run monitoring fails any answer but
            # RUNNING/SUCCESS, so give the benefit of the doubt until it is known.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not logged its pid yet")
        if pid_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        current = self._instance.get_run_by_id(run.run_id)
        if current is not None and current.is_finished:  # it finished between the two reads
            return CheckRunHealthResult(WorkerStatus.SUCCESS, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker process {pid} is gone (killed or crashed) while the run was still STARTED; "
            "its pool slots are freed shortly and the run can be re-executed",
            run_worker_id=str(pid),
        )
