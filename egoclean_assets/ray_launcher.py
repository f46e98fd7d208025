"""The run launcher of deploy/dagster.ray.yaml: dagster-ray's RayRunLauncher with EgoClean's environment.

Each Dagster run becomes one Ray job (the run's process is the Ray driver of its K clips).
Three things the plain RayRunLauncher leaves to a hand-kept config, decided here instead:

- The environment forwarded into the job is derived, never listed by hand: every variable
  of `egoclean.core.defaults.ENVIRONMENT` (patterns such as `EGOCLEAN_RAY_*` included),
  every variable the instance's own dagster.yaml reads (`{env: NAME}`, such as
  the instance database's URL), and `AWS_*` / `PG*` (S3 and PostgreSQL credentials), as far as the
  launching process (the daemon) has them set.
- The job runs the project's own environment, `python -m dagster api execute_run ...` with
  an interpreter of the project's install: the entry point Dagster recorded for the run's
  code location when it names one (a code server started with
  `--use-python-environment-entry-point`, or `executable_path` in workspace.yaml), else
  the launching process's own interpreter (the daemon's, or the backfill command's). The
  Ray nodes run the same image as the code server and the daemon, so that interpreter is
  there with the project installed. Dagster's default entry point, a bare `dagster`, is
  looked up on the PATH of Ray's job supervisor, which is not the project's environment
  (`/bin/sh: 1: dagster: not found`, and the run stayed STARTING for 600 s); it is never
  sent. Not a runtime_env `pip`/`conda`: installing torch per job on every node is
  minutes, and a second copy of the environment to keep in step with the image.
- A run whose Ray job ended before the run itself started (the interpreter missing, the
  runtime environment failing to set up, the entry point failing at import), or while it
  ran (the run worker killed), is failed by `fail_runs_whose_job_ended`, called from a
  sensor at each tick, with the job's own message: the worker of such a run reports
  nothing, and Dagster's run monitoring only times a STARTING run out (600 s).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import sys
from typing import Any, Mapping

from dagster._cli.api import ExecuteRunArgs
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._grpc.types import ResumeRunArgs
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster_ray.configs import USER_DEFINED_RAY_KEY
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


def with_derived_environment(run, derived: list[str]):
    """The run as the launcher submits it: its `dagster-ray/config` tag's env_vars added to the derived ones."""
    raw = run.tags.get(USER_DEFINED_RAY_KEY)
    config = json.loads(raw) if raw else {}
    if not config.get("env_vars"):
        return run
    # dagster-ray resolves the list in order, so a tag's KEY=VALUE overrides the derived KEY
    config["env_vars"] = [*derived, *config["env_vars"]]
    return run.with_tags({**run.tags, USER_DEFINED_RAY_KEY: json.dumps(config)})


def entrypoint_command(args: list[str], python: str = sys.executable) -> str:
    """The shell command of a run's Ray job from Dagster's command `args`: a bare `dagster`
    becomes `<python> -m dagster`; the serialized arguments (the last one) are quoted."""
    if args[:1] == ["dagster"]:
        args = [python, "-m", "dagster", *args[1:]]
    return " ".join(shlex.quote(a) for a in args)


def job_error(message: str | None, lines: int = 20, limit: int = 2000) -> str:
    """Why a Ray job ended, from its message: Ray's first line (the exit code) and the job's last log lines,
    less Ray's own lines (one echoes the entrypoint: the run's serialized arguments, kilobytes of them)."""
    text = (message or "").strip().splitlines()
    if not text:
        return ""
    head = text[0].split(", last available logs")[0]
    logs = [ln for ln in text[1:] if ln.strip() and not ln.startswith("Running entrypoint for job ")
            and " job_manager.py:" not in ln]
    tail = "\n".join(logs[-lines:])[-limit:]
    return head + (":\n" + tail if tail else "")


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
        args = ExecuteRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                              instance_ref=self._instance.get_ref(), set_exit_code_on_failure=True)
        self._submit(get_job_submission_id_from_run_id(run.run_id), args, run)

    def resume_run(self, context: ResumeRunContext) -> None:
        run = context.dagster_run
        args = ResumeRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                             instance_ref=self._instance.get_ref(), set_exit_code_on_failure=True)
        self._submit(get_job_submission_id_from_run_id(run.run_id, context.resume_attempt_number), args, run)

    def _submit(self, submission_id: str, args, run) -> None:
        # as dagster-ray's own launch_run/resume_run, but with the entry point of the module docstring
        self.env_vars = [f"{k}={v}" for k, v in
                         forwarded_environment(os.environ, _instance_config(self._instance)).items()]
        self._launch_ray_job(submission_id, entrypoint_command(list(args.get_command_args())),
                             with_derived_environment(run, self.env_vars))

    def fail_runs_whose_job_ended(self) -> list[str]:
        """Fail every STARTING or STARTED run of this launcher whose Ray job has ended (failed, stopped, or
        succeeded with the run unfinished), with the job's own message; returns their ids.

        Dagster's run monitoring only times out a STARTING run (start_timeout_seconds), and the
        worker of a run whose job ended before it started never reports anything. The run is
        read again after the job's status, so a run that finished meanwhile is left as it is."""
        from ray.job_submission import JobStatus  # the Ray client, only where this launcher is configured

        failed = []
        live = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)
        for run in self._instance.get_runs(filters=RunsFilter(statuses=list(live))):
            attempt = self._instance.count_resume_run_attempts(run.run_id)  # a resumed run is a job of its own
            submission_id = get_job_submission_id_from_run_id(run.run_id, attempt)
            try:
                info = self.client.get_job_info(submission_id)
            except RuntimeError:  # not submitted yet, not a Ray job, or the head is unreachable: the next poll
                continue
            if not info.status.is_terminal():
                continue
            current = self._instance.get_run_by_id(run.run_id)
            if current is None or current.status not in live:
                continue
            when = "before the run started" if current.status == DagsterRunStatus.STARTING else "while the run ran"
            what = (f"succeeded {when} but the run never ended (its worker exited without reporting)"
                    if info.status == JobStatus.SUCCEEDED else f"{info.status.value.lower()} {when}")
            why = job_error(info.message)
            self._instance.report_run_failed(current, f"Ray job {submission_id} {what}" + (f": {why}" if why else ""))
            failed.append(run.run_id)
        return failed
