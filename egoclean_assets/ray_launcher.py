"""The run launcher of deploy/dagster.ray.yaml: dagster-ray's RayRunLauncher with EgoClean's environment.

Each Dagster run becomes one Ray job (the run's process is the Ray driver of its K clips).
Three things the plain RayRunLauncher leaves to a hand-kept config, decided here instead:

- The environment forwarded into the job is derived, never listed by hand: every variable
  of `egoclean.core.defaults.ENVIRONMENT` (patterns such as `EGOCLEAN_RAY_*` included),
  every variable the instance's own dagster.yaml reads (`{env: NAME}`, e.g.
  EGOCLEAN_PG_URL), and `AWS_*` / `PG*` (S3 and PostgreSQL credentials), as far as the
  launching process (the daemon) has them set.
- The job runs the project's own environment: the entry point Dagster recorded for the
  run's code location, which is `<that code server's python> -m dagster` when the code
  server runs with `--use-python-environment-entry-point` (or `executable_path` in
  workspace.yaml). The Ray nodes run the same image as the code server, so that
  interpreter exists on every node with the project installed; a bare `dagster` (the
  default entry point) is looked up on the PATH of Ray's job supervisor, which is not
  the project's environment (`/bin/sh: dagster: not found`), so such a run is failed at
  launch with a line saying how to start the code server.
- A run whose Ray job ended before the run itself started (the interpreter missing, the
  runtime environment failing to set up, the entry point failing at import) is failed by
  `fail_starting_runs`, called from a sensor at each poll, with the job's own message;
  dagster-ray's health check covers runs that had started.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any, Mapping

from dagster._core.launcher import LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster_ray.core.run_launcher import RayRunLauncher, get_job_submission_id_from_run_id

from egoclean.core import defaults

# Credentials and connection settings of the shared services, by prefix.
FORWARDED_PREFIXES = ("AWS_", "PG")


def _instance_env_names(config: Any) -> set[str]:
    """The names of every `{env: NAME}` in an instance's configuration."""
    if isinstance(config, Mapping):
        if set(config) == {"env"} and isinstance(config["env"], str):
            return {config["env"]}
        return set().union(*(_instance_env_names(v) for v in config.values())) if config else set()
    if isinstance(config, (list, tuple)):
        return set().union(*(_instance_env_names(v) for v in config)) if config else set()
    return set()


def forwarded_environment(environ: Mapping[str, str], instance_config: Any = None) -> dict[str, str]:
    """The variables of `environ` a run's Ray job gets (see the module docstring)."""
    patterns = [v.name for v in defaults.ENVIRONMENT]
    wanted = _instance_env_names(instance_config)
    return {
        k: v for k, v in sorted(environ.items())
        if k in wanted or k.startswith(FORWARDED_PREFIXES) or any(fnmatch.fnmatchcase(k, p) for p in patterns)
    }


def _instance_config(instance) -> Any:
    ref = instance.get_ref()
    return getattr(ref, "settings", None)


class EgoCleanRayRunLauncher(RayRunLauncher):
    """RayRunLauncher whose forwarded environment is derived (never `env_vars` in the yaml)."""

    def __init__(self, **kwargs):
        if kwargs.get("env_vars"):
            raise ValueError(
                "deploy/dagster.ray.yaml: run_launcher env_vars is derived by EgoCleanRayRunLauncher "
                "(egoclean.core.defaults.ENVIRONMENT, the instance's {env: ...}, AWS_*, PG*); remove the list"
            )
        super().__init__(**kwargs)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        entry = list(origin.repository_origin.entry_point or []) if origin is not None else []
        if entry[:1] == ["dagster"]:
            self._instance.report_run_failed(
                run,
                "the code server records the entry point `dagster`, which Ray's job supervisor cannot find "
                "(not the project's environment); start it with `dagster code-server start "
                "--use-python-environment-entry-point ...` (or set executable_path in workspace.yaml)",
            )
            return
        env = forwarded_environment(os.environ, _instance_config(self._instance))
        self.env_vars = [f"{k}={v}" for k, v in env.items()]
        super().launch_run(context)

    def fail_starting_runs(self) -> list[str]:
        """Fail every STARTING run of this launcher whose Ray job has already ended; returns their ids."""
        from ray.job_submission import JobStatus  # the Ray client, only where this launcher is configured

        failed = []
        for run in self._instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTING])):
            submission_id = get_job_submission_id_from_run_id(run.run_id)
            try:
                info = self.client.get_job_info(submission_id)
            except RuntimeError:  # not submitted yet, or the head is unreachable: the next poll decides
                continue
            if info.status in (JobStatus.FAILED, JobStatus.STOPPED):
                current = self._instance.get_run_by_id(run.run_id)
                if current is not None and current.status == DagsterRunStatus.STARTING:
                    self._instance.report_run_failed(
                        current, f"Ray job {submission_id} {info.status.value.lower()} before the run started: "
                        f"{(info.message or '').strip()[-2000:]}")
                    failed.append(run.run_id)
        return failed
