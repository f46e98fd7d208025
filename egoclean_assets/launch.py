"""Launch runs the way the UI does: from the code location that workspace.yaml loads.

`job.execute_in_process` runs a job without a code location, so its runs carry no
repository and a snapshot of their own: the UI leaves them off the job's page and the
Overview timeline, and warns on "Re-execute" that the job "may be a different
version". The demo's clip and export runs and the backfill command's runs (one per clip,
or in Ray mode one per range of K clips) are launched here instead. Runs launched here are
ordinary runs: created from the workspace's code location (a code server started for the
purpose, as `dagster dev` does), launched by the instance's run launcher into a run
worker, with the location's job snapshot and origin. They bypass the run queue (nothing
dequeues it without the daemon) and are launched one at a time; pools still apply inside
each run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

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

    def check_summary(self, name=lambda c: c.check_name) -> str:
        """`checks P/N passed` and which failed and which were not evaluated (their asset was
        not produced), each check named by `name`."""
        unrun = [name(c) for c in self.checks if not c.passed and _not_evaluated(c)]
        bad = [name(c) for c in self.checks if not c.passed and not _not_evaluated(c)]
        return (f"checks {len(self.checks) - len(bad) - len(unrun)}/{len(self.checks)} passed"
                + (f"; failed: {', '.join(sorted(bad))}" if bad else "")
                + (f"; not evaluated: {', '.join(sorted(unrun))}" if unrun else ""))


def _not_evaluated(evaluation) -> bool:
    """Whether a check evaluation records a check whose asset was never produced (failures.py, cluster.py)."""
    result = evaluation.metadata.get("result")
    return result is not None and result.value == "not evaluated"


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
    runs = [{"dagster/partition": key} if key is not None else {} for key in keys]
    # the runs first: zip then asks them once more after the last key, which lets them close their workspace
    for outcome, key in zip(launch_runs(instance, runs, job_name, tags, run_config, poll_sec=poll_sec), keys):
        yield key, outcome


def launch_range_runs(instance: DagsterInstance, ranges: list[list[str]], assets: Sequence[str],
                      job_name: str = "clip_pipeline", tags: Mapping[str, str] | None = None,
                      run_config: Mapping | None = None, poll_sec: float = 0.5) -> Iterator[RunOutcome]:
    """Launch one run of `job_name`'s `assets` (and their checks) per partition range, one after another.

    Each range is a list of contiguous keys; its run covers the first to the last (the
    range tags a UI backfill with a multi_run policy gives its runs)."""
    # imported here: Dagster's private tag names, only needed for range runs
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    runs = [{ASSET_PARTITION_RANGE_START_TAG: r[0], ASSET_PARTITION_RANGE_END_TAG: r[-1]} for r in ranges]
    yield from launch_runs(instance, runs, job_name, tags, run_config, assets=assets, poll_sec=poll_sec)


def launch_runs(instance: DagsterInstance, runs: list[Mapping[str, str]], job_name: str,
                tags: Mapping[str, str] | None = None, run_config: Mapping | None = None,
                assets: Sequence[str] | None = None, poll_sec: float = 0.5) -> Iterator[RunOutcome]:
    """Launch one run of `job_name` (only `assets` and their checks, if given) per entry of `runs`
    (that run's own tags), each after the one before has finished; yields each outcome."""
    # imported here, not at module top: Dagster's workspace machinery is needed only to launch
    from dagster import AssetKey
    from dagster._core.definitions.selector import JobSubsetSelector
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
        if assets is None:
            remote_job = repo.get_full_job(job_name)
        else:  # the job subset the UI's "Materialize" of these assets launches (their checks included)
            remote_job = location.get_job(JobSubsetSelector(
                location_name=LOCATION, repository_name=REPOSITORY, job_name=job_name, op_selection=None,
                asset_selection=[AssetKey(a) for a in assets]))
        for own_tags in runs:
            run = _create_run(instance, location, repo, remote_job, dict(run_config or {}),
                              {**(tags or {}), **own_tags})
            instance.launch_run(run.run_id, workspace)
            while not instance.get_run_by_id(run.run_id).is_finished:
                time.sleep(poll_sec)
            yield _outcome(instance, run.run_id)


def _create_run(instance, location, repo, remote_job, run_config: dict, tags: dict):
    """A NOT_STARTED run of `remote_job` (the whole job or an asset subset) from the location's snapshot,
    as `dagster job launch` and the UI's launch make it."""
    plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                       instance=instance)
    snapshot = plan.execution_plan_snapshot
    return instance.create_run(
        job_name=remote_job.name, run_id=None, run_config=run_config,
        resolved_op_selection=None, step_keys_to_execute=snapshot.step_keys_to_execute, op_selection=None,
        status=None, root_run_id=None, parent_run_id=None, tags={**remote_job.tags, **tags},
        job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(), asset_selection=_set(remote_job.asset_selection),
        asset_check_selection=_set(remote_job.asset_check_selection),
        asset_graph=repo.asset_graph,
    )


def _set(selection) -> frozenset | None:
    """A remote job's selection as create_run takes it (None: no subset)."""
    return frozenset(selection) if selection is not None else None
