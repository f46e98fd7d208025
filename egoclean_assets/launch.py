"""Launch runs the way the UI does: from the code location that workspace.yaml loads.

`job.execute_in_process` runs a job without a code location, so its runs carry no
repository and a snapshot of their own: the UI leaves them off the job's page and the
Overview timeline, and warns on "Re-execute" that the job "may be a different
version". The demo's clip and export runs and the backfill command's runs are launched
here instead. Runs launched here are ordinary runs: created from the workspace's code
location (a code server started for the purpose, as `dagster dev` does), launched by the
instance's run launcher into a run worker, with the location's job snapshot and origin.
They bypass the run queue (nothing dequeues it without the daemon) and are launched one
at a time; pools still apply inside each run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from dagster import DagsterEventType, DagsterInstance

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "workspace.yaml"
LOCATION = "egoclean_assets.definitions"  # the location name workspace.yaml gives the module
REPOSITORY = "__repository__"


@dataclass
class RunOutcome:
    """What one launched run did: its id, status, check results and step failures (step, message)."""

    run_id: str
    status: str
    checks: list = field(default_factory=list)  # dagster AssetCheckEvaluation
    step_failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


def _outcome(instance: DagsterInstance, run_id: str) -> RunOutcome:
    run = instance.get_run_by_id(run_id)
    checks = [r.dagster_event.event_specific_data
              for r in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]
    failures = []
    for r in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = r.dagster_event.event_specific_data
        desc = data.user_failure_data.description if data.user_failure_data else None
        failures.append((r.step_key, (desc or data.error.message).strip()))
    return RunOutcome(run_id, run.status.value, checks, failures)


def launch_partition_runs(instance: DagsterInstance, keys: list[str | None], job_name: str = "clip_pipeline",
                          tags: Mapping[str, str] | None = None, run_config: Mapping | None = None,
                          poll_sec: float = 0.5) -> Iterator[tuple[str | None, RunOutcome]]:
    """Launch one run of `job_name` per partition key, one after another; yields (key, outcome).

    A key of None launches a run of an unpartitioned job (export_dataset)."""
    # imported here, not at module top: Dagster's workspace machinery is needed only to launch
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    target = WorkspaceFileTarget(paths=[str(WORKSPACE)])
    with WorkspaceProcessContext(instance, target, code_server_log_level="WARNING") as process:
        workspace = process.create_request_context()
        errors = workspace.get_code_location_error(LOCATION)
        if errors is not None:
            raise RuntimeError(f"code location {LOCATION} failed to load: {errors.message.strip()}")
        location = workspace.get_code_location(LOCATION)
        repo = location.get_repository(REPOSITORY)
        remote_job = repo.get_full_job(job_name)
        for key in keys:
            run = _create_run(instance, location, repo, remote_job, dict(run_config or {}),
                              {**(tags or {}), **({"dagster/partition": key} if key is not None else {})})
            instance.launch_run(run.run_id, workspace)
            while not instance.get_run_by_id(run.run_id).is_finished:
                time.sleep(poll_sec)
            yield key, _outcome(instance, run.run_id)


def _create_run(instance, location, repo, remote_job, run_config: dict, tags: dict):
    """A NOT_STARTED run of the whole job from the location's snapshot (as `dagster job launch` makes)."""
    plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                       instance=instance)
    snapshot = plan.execution_plan_snapshot
    return instance.create_run(
        job_name=remote_job.name, run_id=None, run_config=run_config,
        resolved_op_selection=None, step_keys_to_execute=snapshot.step_keys_to_execute, op_selection=None,
        status=None, root_run_id=None, parent_run_id=None, tags={**remote_job.tags, **tags},
        job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(), asset_selection=None, asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )
