"""A run whose worker dies is detected and failed, its pool slots are freed, and the next run proceeds.

The end-to-end test starts a real `dagster dev` (webserver, daemon, code server) on a
temporary DAGSTER_HOME with the shipped dagster_home/dagster.yaml, holds the DuckDB file
so that `anomaly_segments` waits while holding the one `duckdb` pool slot, SIGKILLs the
run worker there, and then needs a second run of the same step to complete.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import WorkerStatus

from tests.support.dagster_dev import DagsterDev
from egoclean_assets.run_launcher import MonitoredRunLauncher, pid_alive

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_instance_monitors_runs_and_frees_slots_of_dead_ones(tmp_path):
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as inst:
        assert inst.run_monitoring_enabled
        assert isinstance(inst.run_launcher, MonitoredRunLauncher)
        assert inst.run_launcher.supports_check_run_worker_health
        assert 0 < inst.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 60
        assert inst.run_monitoring_settings["poll_interval_seconds"] <= 30
        assert inst.nux_enabled is False  # no sign-up dialog over a newcomer's first page


def test_cluster_instance_frees_slots_of_dead_runs_too():
    import yaml

    cfg = yaml.safe_load((ROOT / "deploy" / "dagster.cluster.yaml").read_text())
    assert cfg["run_monitoring"]["enabled"] is True
    assert 0 < cfg["run_monitoring"]["free_slots_after_run_end_seconds"] <= 120
    # the health check judges runs by the machine they recorded; a bare logged pid means nothing elsewhere
    assert cfg["run_launcher"]["class"] == "MonitoredRunLauncher"
    assert cfg["run_launcher"]["config"]["local_pid_check"] is False


def _started_run(instance, pid: int | None) -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="clip_pipeline", status=DagsterRunStatus.STARTED))
    if pid is not None:
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run


def test_health_check_reads_the_workers_pid():
    with DagsterInstance.ephemeral() as instance:
        launcher = MonitoredRunLauncher()
        launcher.register_instance(instance)
        alive = _started_run(instance, os.getpid())
        assert launcher.check_run_worker_health(alive).status == WorkerStatus.RUNNING

        done = subprocess.Popen(["true"])
        done.wait()  # reaped: the pid no longer exists
        dead = _started_run(instance, done.pid)
        res = launcher.check_run_worker_health(dead)
        assert res.status == WorkerStatus.FAILED and str(done.pid) in res.msg

        zombie = subprocess.Popen(["true"])  # exited, not reaped yet
        deadline = time.monotonic() + 10
        while pid_alive(zombie.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert launcher.check_run_worker_health(_started_run(instance, zombie.pid)).status == WorkerStatus.FAILED
        zombie.wait()

        # no pid logged yet: a worker still starting is not failed
        assert launcher.check_run_worker_health(_started_run(instance, None)).status == WorkerStatus.RUNNING


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    base = tmp_path_factory.mktemp("monitor")
    summary = write_dataset(base / "source", SynthConfig(clips=1, duration_sec=20.0, width=160, height=96))
    model = save_tiny_model(base / "tiny-vjepa2")
    return {"base": base, "summary": summary, "model": str(model), "keys": [c["clip_id"] for c in summary["clips"]]}


def dev_env(dataset, base: Path) -> dict[str, str]:
    return {"EGOCLEAN_SOURCE": str(dataset["base"] / "source"), "EGOCLEAN_MODEL": dataset["model"],
            "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DATA_ROOT": str(base / "data"), "EGOCLEAN_DB": str(base / "e.duckdb"),
            "EGOCLEAN_GROUND_TRUTH_SEED": "0", "EGOCLEAN_GROUND_TRUTH": str(dataset["summary"]["ground_truth"]),
            "EGOCLEAN_CACHE": str(base / "cache")}


def _wait_step_start(instance, run_id: str, step: str, dev, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.dagster_event and e.dagster_event.event_type_value == "STEP_START" and e.step_key == step
               for e in instance.all_logs(run_id)):
            return
        assert dev.run_status(run_id) not in ("SUCCESS", "FAILURE", "CANCELED"), dev.log_tail()
        time.sleep(0.5)
    raise AssertionError(f"{step} did not start in {timeout} s: {dev.log_tail()}")


def test_killed_run_is_failed_its_slot_freed_and_the_next_run_completes(dataset, tmp_path, monkeypatch):
    import duckdb

    home = tmp_path / "home"
    env = dev_env(dataset, tmp_path)
    key = dataset["keys"][0]
    with DagsterDev(home, env, tmp_path / "dev.log") as dev:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("clips", [key])
            holder = duckdb.connect(env["EGOCLEAN_DB"])  # anomaly_segments now waits for the file
            try:
                first = dev.launch(key)
                _wait_step_start(instance, first, "anomaly_segments", dev, timeout=240)
                claimed = instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
                assert [(c.run_id, c.step_key) for c in claimed] == [(first, "anomaly_segments")]
                pid = instance.run_launcher.run_worker_pid(first)
                assert pid and pid_alive(pid)
                os.kill(pid, signal.SIGKILL)
                assert dev.wait_run(first, timeout=90) == "FAILURE"
            finally:
                holder.close()
            # the dead run's slot is released, so the same step runs again and completes
            second = dev.launch(key, ["anomaly_segments"])
            assert dev.wait_run(second, timeout=240) == "SUCCESS", dev.log_tail()
            assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots == []


def test_run_for_a_key_that_is_not_a_clip_id_is_refused_at_launch():
    from dagster._core.errors import DagsterInvariantViolationError
    from dagster._core.launcher import LaunchRunContext

    with DagsterInstance.ephemeral() as instance:
        launcher = MonitoredRunLauncher()
        launcher.register_instance(instance)
        bad = instance.add_run(DagsterRun(job_name="clip_pipeline", status=DagsterRunStatus.STARTING,
                                          tags={"dagster/partition": "my clip"}))
        launcher.launch_run(LaunchRunContext(dagster_run=bad, workspace=None))  # no worker is started
        assert instance.get_run_by_id(bad.run_id).status == DagsterRunStatus.FAILURE
        (failure,) = [r for r in instance.all_logs(bad.run_id) if r.dagster_event and r.dagster_event.is_run_failure]
        assert failure.dagster_event.message.startswith("partition key 'my clip' is not a clip id")
        # a clip id goes on to Dagster's own launch (which needs a workspace here)
        good = instance.add_run(DagsterRun(job_name="clip_pipeline", status=DagsterRunStatus.STARTING,
                                           tags={"dagster/partition": "factory001_worker001_00001"}))
        with pytest.raises(DagsterInvariantViolationError, match="requires a workspace"):
            launcher.launch_run(LaunchRunContext(dagster_run=good, workspace=None))
