"""A run whose worker died is failed and its pool slot freed: on the single-machine instance (SQLite,
dagster_home/dagster.yaml) and on the cluster instance (PostgreSQL, deploy/dagster.cluster.yaml),
through Dagster's own run-monitoring code and, without a daemon, through the backfill CLI's sweep.

The run worker is a real process running a real job on the instance (a step holding the `gpu`
pool slot, using ClipStorage as every clip step does) and is SIGKILLed mid-step."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import WorkerStatus

from egoclean_assets.run_launcher import (
    HEARTBEAT_TAG,
    WORKER_TAG,
    MonitoredRunLauncher,
    fail_dead_runs,
    process_start,
    this_machine,
    worker_health,
)

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dagster import DagsterInstance, job, op
    from egoclean_assets.io_manager import ClipStorage

    @op(pool="gpu")
    def hold_the_gpu(storage: ClipStorage):
        Path(sys.argv[1]).write_text("started")
        time.sleep(600)

    @job
    def holds():
        hold_the_gpu()

    with DagsterInstance.get() as instance:
        holds.execute_in_process(instance=instance, resources={"storage": ClipStorage(data_root=sys.argv[2])})
""")


def _home(tmp_path, yaml_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(yaml_path, home / "dagster.yaml")
    return home


def _start_worker(tmp_path, env) -> tuple[subprocess.Popen, Path]:
    script, flag = tmp_path / "worker.py", tmp_path / "started"
    script.write_text(WORKER)
    proc = subprocess.Popen([sys.executable, str(script), str(flag), str(tmp_path / "data")], cwd=ROOT,
                            env=os.environ | env | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the worker's step did not start"
        time.sleep(0.2)
    return proc, flag


def _the_started_run(instance) -> DagsterRun:
    (run,) = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    return run


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()


def test_killed_backfill_run_is_failed_and_its_slot_freed_without_a_daemon(tmp_path, monkeypatch):
    """SQLite instance, no daemon: the backfill CLI's sweep (fail_dead_runs) fails the run and frees the slot."""
    home = _home(tmp_path, ROOT / "dagster_home" / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    proc, _ = _start_worker(tmp_path, {"DAGSTER_HOME": str(home)})
    try:
        with DagsterInstance.get() as instance:
            run = _the_started_run(instance)
            worker = json.loads(run.tags[WORKER_TAG])
            assert worker["pid"] == proc.pid and worker["start"] == process_start(proc.pid)
            claimed = instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
            assert [c.run_id for c in claimed] == [run.run_id]
            assert fail_dead_runs(instance) == []  # alive: left alone
            _kill(proc)
            assert fail_dead_runs(instance) == [run.run_id]
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
            assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
            (failure,) = [r for r in instance.all_logs(run.run_id)
                          if r.dagster_event and r.dagster_event.is_run_failure]
            assert f"run worker process {proc.pid} on " in failure.dagster_event.message
    finally:
        if proc.poll() is None:
            _kill(proc)


def test_cluster_instance_fails_a_killed_run_through_run_monitoring(tmp_path, postgres, monkeypatch):
    """PostgreSQL instance with the shipped cluster yaml: Dagster's run monitoring (the daemon's own
    monitor_started_run) fails the run whose worker was killed; before, it stayed STARTED for ever."""
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    home = _home(tmp_path, ROOT / "deploy" / "dagster.cluster.yaml")
    db = postgres.createdb(f"dead_{uuid.uuid4().hex[:8]}")
    env = {"DAGSTER_HOME": str(home), "EGOCLEAN_PG_URL": postgres.url(db)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    proc, _ = _start_worker(tmp_path, env)
    try:
        with DagsterInstance.get() as instance:
            assert isinstance(instance.run_launcher, MonitoredRunLauncher)
            assert instance.run_launcher.local_pid_check is False
            run = _the_started_run(instance)
            (record,) = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
            log = logging.getLogger("test")
            monitor_started_run(instance, None, record, log)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # alive
            _kill(proc)
            for _ in range(3):  # "after any number of monitoring polls" it stayed STARTED before
                (record,) = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
                if record.dagster_run.status != DagsterRunStatus.STARTED:
                    break
                monitor_started_run(instance, None, record, log)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    finally:
        if proc.poll() is None:
            _kill(proc)


def _run_with(instance, tags: dict, pid: int | None = None) -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="clip_pipeline", status=DagsterRunStatus.STARTED, tags=tags))
    if pid is not None:
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return instance.get_run_by_id(run.run_id)


def _worker_tag(pid: int, start, machine: dict | None = None, heartbeat: bool = True) -> dict:
    return {WORKER_TAG: json.dumps({**(machine or this_machine()), "pid": pid, "start": start, "heartbeat": heartbeat})}


def test_reused_pids_pid_1_and_silent_machines_are_dead():
    with DagsterInstance.ephemeral() as instance:
        me = os.getpid()
        alive = _run_with(instance, _worker_tag(me, process_start(me)))
        assert worker_health(instance, alive)[0] == WorkerStatus.RUNNING
        # the recorded worker started at another time: the pid was given to another process
        reused = _run_with(instance, _worker_tag(me, process_start(me) - 1))
        status, msg = worker_health(instance, reused)
        assert status == WorkerStatus.FAILED and "now belongs to another process" in msg
        assert worker_health(instance, _run_with(instance, _worker_tag(1, 12345)))[0] == WorkerStatus.FAILED
        # another machine: its own daemon judges, unless its heartbeat has gone silent
        other = {"host": "elsewhere", "boot_id": "another-boot"}
        fresh = _run_with(instance, _worker_tag(4242, 1, other) | {HEARTBEAT_TAG: f"{time.time():.0f}"})
        assert worker_health(instance, fresh, local_pid_check=False)[0] == WorkerStatus.RUNNING
        silent = _run_with(instance, _worker_tag(4242, 1, other) | {HEARTBEAT_TAG: f"{time.time() - 400:.0f}"})
        status, msg = worker_health(instance, silent, local_pid_check=False)
        assert status == WorkerStatus.FAILED and "no heartbeat for 400 s" in msg and "elsewhere" in msg
        multi = _run_with(instance, _worker_tag(4242, 1, other, heartbeat=False) | {HEARTBEAT_TAG: "0"})
        assert worker_health(instance, multi, local_pid_check=False)[0] == WorkerStatus.RUNNING
        # no recorded worker: the logged pid, only on one machine, and not a process younger than the log
        assert worker_health(instance, _run_with(instance, {}, pid=1))[0] == WorkerStatus.FAILED  # not Python
        assert worker_health(instance, _run_with(instance, {}, pid=me))[0] == WorkerStatus.RUNNING
        assert worker_health(instance, _run_with(instance, {}, pid=1), local_pid_check=False)[0] == WorkerStatus.RUNNING


MACHINE_B = "egoclean-machine-b"
HEARTBEAT_TIMEOUT = 25.0  # the test's instance: longer than two heartbeats (RUN_HEARTBEAT_SEC), far below 300 s


def _host_pids_below(pid: int) -> list[int]:
    """The host's pids of every process below `pid` (its children, theirs...)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                kids = [int(k) for k in open(f"/proc/{p}/task/{t}/children").read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _start_worker_on_machine_b(tmp_path, env) -> tuple[subprocess.Popen, int]:
    """The WORKER on "machine B": its own hostname (UTS namespace) and its own pid table (pid namespace,
    /proc of its own), the same instance database and files. Returns the `unshare` process and the
    worker's pid as this host sees it."""
    script, flag = tmp_path / "worker.py", tmp_path / "started"
    script.write_text(WORKER)
    cmd = ["unshare", "--uts", "--pid", "--mount-proc", "--kill-child", "--", "sh", "-c",
           f'hostname {MACHINE_B} && "$0" "$@"', sys.executable, str(script), str(flag), str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ | env | {"PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the worker's step on machine B did not start"
        time.sleep(0.2)
    (worker,) = [p for p in _host_pids_below(proc.pid)  # python, not the `sh -c` that started it
                 if open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[:2] == [sys.executable.encode(),
                                                                                 str(script).encode()]]
    return proc, worker


def test_a_run_on_another_machine_is_judged_by_its_heartbeat_not_by_this_machines_pids(tmp_path, postgres,
                                                                                        monkeypatch):
    """Two machines on this host: B (its own hostname and pid table) runs the worker on the cluster
    instance (PostgreSQL, the shipped cluster yaml with a short heartbeat timeout), A (this process) runs
    Dagster's run monitoring. While B's worker lives, A leaves the run alone however long it watches
    (before: A looked B's pid up in its own pid table, found another process there and failed the live
    run); once B's worker is SIGKILLed, A fails the run only when its heartbeat has been silent for the
    timeout, and says so."""
    import socket

    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    from egoclean.core import defaults

    home = tmp_path / "dagster_home"
    home.mkdir()
    yaml_text = (ROOT / "deploy" / "dagster.cluster.yaml").read_text()
    assert "heartbeat_timeout_seconds: 300" in yaml_text
    (home / "dagster.yaml").write_text(yaml_text.replace("heartbeat_timeout_seconds: 300",
                                                         f"heartbeat_timeout_seconds: {HEARTBEAT_TIMEOUT:g}"))
    db = postgres.createdb(f"machines_{uuid.uuid4().hex[:8]}")
    env = {"DAGSTER_HOME": str(home), "EGOCLEAN_PG_URL": postgres.url(db)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    proc, worker_pid = _start_worker_on_machine_b(tmp_path, env)
    log = logging.getLogger("test")
    try:
        with DagsterInstance.get() as instance:
            run = _the_started_run(instance)
            worker = json.loads(run.tags[WORKER_TAG])
            assert worker["host"] == MACHINE_B != socket.gethostname()
            assert worker["pid"] != worker_pid  # B's own pid table: its number means another process here

            def monitor() -> DagsterRun:
                (record,) = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
                if record.dagster_run.status == DagsterRunStatus.STARTED:
                    monitor_started_run(instance, None, record, log)
                return instance.get_run_by_id(run.run_id)

            # alive on B: A's monitoring, polled for longer than the timeout, leaves it STARTED
            first_beat = float(run.tags[HEARTBEAT_TAG])
            until = time.monotonic() + HEARTBEAT_TIMEOUT + defaults.RUN_HEARTBEAT_SEC
            while time.monotonic() < until:
                assert monitor().status == DagsterRunStatus.STARTED, "A failed B's live run"
                time.sleep(2.0)
            assert float(instance.get_run_by_id(run.run_id).tags[HEARTBEAT_TAG]) > first_beat  # B beat meanwhile
            # B's worker killed: A cannot see it; the run stays STARTED until the heartbeat is stale
            os.kill(worker_pid, signal.SIGKILL)
            proc.wait(timeout=30)
            last_beat = float(instance.get_run_by_id(run.run_id).tags[HEARTBEAT_TAG])
            assert monitor().status == DagsterRunStatus.STARTED
            deadline = time.monotonic() + HEARTBEAT_TIMEOUT + 60
            while monitor().status == DagsterRunStatus.STARTED:
                assert time.monotonic() < deadline, "the silent run was never failed"
                time.sleep(2.0)
            assert time.time() - last_beat > HEARTBEAT_TIMEOUT  # not before the heartbeat went stale
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
            (failure,) = [r for r in instance.all_logs(run.run_id)
                          if r.dagster_event and r.dagster_event.is_run_failure]
            said = failure.dagster_event.message
            assert f"on {MACHINE_B} has sent no heartbeat for " in said and "its machine or process is gone" in said
    finally:
        if proc.poll() is None:
            proc.kill()  # --kill-child: the namespace's processes go with it
            proc.wait(timeout=30)
        proc.stderr.close()
