"""`ray_job_monitor_sensor` (egoclean_assets.sensors) against live Ray jobs of deploy/dagster.ray.yaml's launcher.

tests/support/ray_job_monitor.py runs once (module fixture) in a loopback-only network
namespace: a Ray head with the Jobs API, a SQLite Dagster instance with
EgoCleanRayRunLauncher, and a code server whose interpreter the "Ray nodes" then lack.
Each test asserts on its part of the report: one sensor evaluation fails a run whose Ray
job failed at start and one whose job succeeded without the run starting, leaves a run
whose job is running alone, and fails a STARTED run whose job's driver (the run worker)
was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.ray_head import namespace_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.fail("the Ray job monitor test needs root with `unshare` and `ip` (a loopback-only network namespace)")
    pytest.importorskip("aiohttp_cors")  # the Jobs API (the cluster extra's ray[default])
    work = tmp_path_factory.mktemp("ray_jobs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGOCLEAN_", "RAY_", "DAGSTER_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(namespace_command(["-m", "tests.support.ray_job_monitor", str(work)]), cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:  # the scenario stops what it started; only a hung one is killed here
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    assert proc.returncode == 0 and last.startswith("{"), f"scenario failed ({proc.returncode}):\n{err[-4000:]}"
    rep = json.loads(last)
    assert "error" not in rep, (rep["error"], rep.get("code_server_log"))
    return rep


def test_a_run_whose_ray_job_failed_at_start_is_failed_by_one_sensor_tick_with_the_jobs_error(report):
    interpreter = report["entry_point"][0]
    assert interpreter.endswith("/image/bin/python"), report["entry_point"]  # the code server's own, recorded
    before, after = report["before"]["B"], report["after1"]["B"]
    # the job failed because its interpreter is not there, and the run never started: nothing reported it
    assert before["job_status"] == "FAILED" and "not found" in before["job_message"], before
    assert before["status"] == "STARTING" and before["failures"] == [], before
    # one evaluation: the run is failed, its failure names the job and carries the job's error
    assert after["status"] == "FAILURE", after
    assert len(after["failures"]) == 1, after
    reason = after["failures"][0]
    assert f"Ray job dagster-run-{report['runs']['B']} failed before the run started" in reason, reason
    assert "exit code 127" in reason and f"{interpreter}: not found" in reason, reason
    assert "ExecuteRunArgs" not in reason  # Ray's echo of the entry point (the run's serialized arguments) left out
    assert report["runs"]["B"] in report["tick1"], report["tick1"]


def test_a_run_whose_ray_job_succeeded_without_running_it_is_failed_by_one_sensor_tick(report):
    before, after = report["before"]["C"], report["after1"]["C"]
    # the job's entry point exited 0 without running the run: Ray says SUCCEEDED, the run never started
    assert before["job_status"] == "SUCCEEDED" and before["status"] == "STARTING", before
    assert before["failures"] == [], before
    assert after["status"] == "FAILURE" and len(after["failures"]) == 1, after
    reason = after["failures"][0]
    assert (f"Ray job dagster-run-{report['runs']['C']} succeeded before the run started but the run never ended"
            in reason), reason
    assert report["runs"]["C"] in report["tick1"], report["tick1"]


def test_a_run_whose_ray_job_is_running_is_left_alone(report):
    before, after = report["before"]["A"], report["after1"]["A"]
    assert before["job_status"] == "RUNNING" and before["status"] == "STARTED", before
    assert after["status"] == "STARTED" and after["failures"] == [], after
    assert report["runs"]["A"] not in report["tick1"], report["tick1"]


def test_a_started_run_whose_worker_died_is_failed_by_one_sensor_tick(report):
    before, after = report["before2"]["A"], report["after2"]["A"]
    assert report["killed_worker"], report
    # the job's driver is the run worker: SIGKILLed, the job failed and the run is still STARTED
    assert before["job_status"] == "FAILED" and before["status"] == "STARTED", before
    assert after["status"] == "FAILURE" and len(after["failures"]) == 1, after
    reason = after["failures"][0]
    assert f"Ray job dagster-run-{report['runs']['A']} failed while the run ran" in reason, reason
    assert before["job_message"].splitlines()[0].split(", last available logs")[0] in reason, (
        reason, before["job_message"])
