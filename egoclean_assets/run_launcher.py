"""The run launcher of both Dagster instances: Dagster's default one, plus a worker health check.

Dagster's DefaultRunLauncher starts each run in a process of a code server but cannot
tell run monitoring whether that process is still alive, so a run whose worker was
killed (SIGKILL, the OOM killer, a crash of the code server with it, a lost machine)
stays STARTED for ever and keeps its `gpu` / `duckdb` pool slots: every later run of
those steps waits. This launcher answers run monitoring's health check, so the daemon
marks such a run failed and, `free_slots_after_run_end_seconds` later, frees its slots
(see docs/RELIABILITY.md):

- A run worker records who it is when its resources start (`register_run_worker`, called
  by ClipStorage): machine (host, boot id and pid namespace: containers on one kernel share
  the boot id but not the pid table), pid and the process's start time, in the
  run's tag `egoclean/run_worker`; a run worker of the in-process executor also writes a
  heartbeat tag every RUN_HEARTBEAT_SEC.
- On the worker's machine (the same host name, boot id and pid namespace) the check is
  exact: the pid must exist, not be a zombie and have the recorded start time (a reused
  pid, or pid 1, is another process: the worker is dead). On another machine it cannot
  look at the process, and leaves the run to that machine's daemon, unless the heartbeat
  has been silent for RUN_HEARTBEAT_TIMEOUT_SEC (the machine is gone).
- A run without that tag (a job that uses no ClipStorage) is judged by the pid its
  worker logged ("Started process for run (pid: N)") only when `local_pid_check` is on
  (one machine: dagster_home/dagster.yaml), and then only if that process started before
  it was logged and runs Python (so a reused pid is not taken for the worker).

`fail_dead_runs` applies the same check without a daemon (the backfill CLI calls it).

It also refuses, before any process starts, a run for a partition key that is not a clip
id: Dagster's "Add a partition" field takes any text and calls no user code, so the
launch is the earliest point to say so (the run fails with that one line).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, DefaultRunLauncher, Field, RunsFilter
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus

from egoclean.core import defaults
from egoclean.core.errors import ClipIdError
from egoclean.core.ids import ClipId

PARTITION_TAG = "dagster/partition"
WORKER_TAG = "egoclean/run_worker"
HEARTBEAT_TAG = "egoclean/heartbeat"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """When the process started, in clock ticks after boot (/proc/PID/stat field 22), or None."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _pid_namespace() -> str:
    """This process's pid namespace (`pid:[4026531836]`): pids mean the same process only inside one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def this_machine() -> dict:
    """Where this process runs, as far as its pid means anything: host name, kernel boot and pid namespace.

    Containers on one host (one kernel, one boot id) each have their own pid table, so a pid
    is only looked up where all three are the same."""
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid_ns": _pid_namespace()}


def _same_machine(w: dict) -> bool:
    """Whether the worker `w` recorded runs where this process can look its pid up (a tag written
    before the pid namespace was recorded is judged by host and boot id)."""
    here = this_machine()
    return bool(w.get("boot_id")) and all(w[k] == here[k] for k in ("host", "boot_id", "pid_ns") if k in w)


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    fields = _stat(pid)
    return fields is None or fields[0] != "Z"


def _started_at(pid: int) -> float | None:
    """The process's start as a Unix time (boot time + its start ticks), or None."""
    ticks = process_start(pid)
    try:
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return None if ticks is None else btime + ticks / os.sysconf("SC_CLK_TCK")


def _runs_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return True  # cannot tell: do not call it dead
    return b"python" in os.path.basename(argv0) or b"dagster" in os.path.basename(argv0)


# ---------------------------------------------------------------------------- the worker's side

_HEARTBEATS: dict[str, threading.Event] = {}
_HEARTBEATS_LOCK = threading.Lock()


def register_run_worker(instance, run_id: str | None) -> None:
    """Record this run worker's machine, pid and start time on the run; start its heartbeat.

    Called in every process that initializes the run's resources. In a step process of
    the multiprocess executor the worker is the parent (the pid the run logged); only the
    run worker itself (in-process executor) beats, as only it lives for the whole run."""
    if not run_id or instance is None or instance.is_ephemeral:
        return  # nothing monitors an ephemeral instance's runs
    with _HEARTBEATS_LOCK:
        if run_id in _HEARTBEATS:
            return
        _HEARTBEATS[run_id] = stop = threading.Event()
    logged = _logged_pid(instance, run_id)
    pid = os.getpid() if logged in (None, os.getpid()) or logged != os.getppid() else logged
    beats = pid == os.getpid()
    me = {**this_machine(), "pid": pid, "start": process_start(pid), "heartbeat": beats}
    instance.add_run_tags(run_id, {WORKER_TAG: json.dumps(me), HEARTBEAT_TAG: f"{time.time():.0f}"})
    if beats:
        threading.Thread(target=_beat, args=(instance.get_ref(), run_id, stop), daemon=True,
                         name=f"egoclean-heartbeat-{run_id[:8]}").start()


def stop_heartbeat(run_id: str | None) -> None:
    with _HEARTBEATS_LOCK:
        stop = _HEARTBEATS.pop(run_id or "", None)
    if stop is not None:
        stop.set()


def _beat(ref, run_id: str, stop: threading.Event) -> None:
    with DagsterInstance.from_ref(ref) as instance:
        while not stop.wait(defaults.RUN_HEARTBEAT_SEC):
            try:
                instance.add_run_tags(run_id, {HEARTBEAT_TAG: f"{time.time():.0f}"})
            except Exception:  # the database away for a moment: the next beat tries again
                pass


def _logged_pid(instance, run_id: str) -> int | None:
    """The pid the run's worker logged when it started executing, with when it was logged."""
    found = _logged(instance, run_id)
    return found[0] if found else None


def _logged(instance, run_id: str) -> tuple[int, float] | None:
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.engine_event_data if record.dagster_event else None
        pid = data.metadata.get("pid") if data is not None and data.metadata else None
        if pid is not None:
            return int(getattr(pid, "value", getattr(pid, "text", pid))), record.timestamp
    return None


# ---------------------------------------------------------------------------- the judge


def worker_health(instance, run, local_pid_check: bool = True,
                  heartbeat_timeout_sec: float = defaults.RUN_HEARTBEAT_TIMEOUT_SEC) -> tuple[WorkerStatus, str]:
    """Whether a STARTED run's worker is alive (RUNNING), gone (FAILED) or not known yet / elsewhere (RUNNING)."""
    tags = run.tags
    if WORKER_TAG in tags:
        try:
            w = json.loads(tags[WORKER_TAG])
            pid, start = int(w["pid"]), w.get("start")
        except (ValueError, KeyError, TypeError):
            return WorkerStatus.RUNNING, f"unreadable {WORKER_TAG} tag: not judged"
        where = f"run worker process {pid} on {w.get('host')}"
        if _same_machine(w):
            if not pid_alive(pid):
                return WorkerStatus.FAILED, f"{where} is gone (killed or crashed) while the run was still STARTED"
            if start is not None and process_start(pid) != start:
                return WorkerStatus.FAILED, (f"{where} is gone: pid {pid} now belongs to another process "
                                             "(it started later)")
            return WorkerStatus.RUNNING, where
        beat = tags.get(HEARTBEAT_TAG)
        if w.get("heartbeat") and beat is not None:
            silent = time.time() - float(beat)
            if silent > heartbeat_timeout_sec:
                return WorkerStatus.FAILED, (f"{where} has sent no heartbeat for {silent:.0f} s "
                                             f"(limit {heartbeat_timeout_sec:g} s): its machine or process is gone")
        return WorkerStatus.RUNNING, f"{where}: another machine (its daemon judges it)"
    if not local_pid_check:
        return WorkerStatus.RUNNING, "the run worker did not say where it runs: not judged"
    found = _logged(instance, run.run_id)
    if found is None:
        # Not logged yet (the worker is starting): run monitoring fails any answer but
        # RUNNING/SUCCESS, so give the benefit of the doubt until it is known.
        return WorkerStatus.RUNNING, "the run worker has not logged its pid yet"
    pid, logged_at = found
    if not pid_alive(pid):
        return WorkerStatus.FAILED, (f"run worker process {pid} is gone (killed or crashed) "
                                     "while the run was still STARTED")
    started = _started_at(pid)
    # A process that started after the worker logged its pid, or that is not Python, is
    # another process that was given the same pid (or pid 1): the worker is gone.
    if (started is not None and started > logged_at + 1.0) or not _runs_python(pid):
        return WorkerStatus.FAILED, f"run worker process {pid} is gone: the pid now belongs to another process"
    return WorkerStatus.RUNNING, f"run worker process {pid}"


class MonitoredRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check (see the module's docstring).

    Config: `local_pid_check` (default true: one machine) judges runs that did not record
    their worker by the pid they logged; set it false where run workers run on several
    machines (deploy/dagster.cluster.yaml)."""

    def __init__(self, inst_data=None, local_pid_check: bool = True,
                 heartbeat_timeout_seconds: float = defaults.RUN_HEARTBEAT_TIMEOUT_SEC):
        super().__init__(inst_data=inst_data)
        self.local_pid_check = local_pid_check
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds

    @classmethod
    def config_type(cls):
        return {"local_pid_check": Field(bool, is_required=False, default_value=True),
                "heartbeat_timeout_seconds": Field(float, is_required=False,
                                                   default_value=defaults.RUN_HEARTBEAT_TIMEOUT_SEC)}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

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
        return _logged_pid(self._instance, run_id)

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        status, msg = worker_health(self._instance, run, self.local_pid_check, self.heartbeat_timeout_seconds)
        if status == WorkerStatus.FAILED:
            current = self._instance.get_run_by_id(run.run_id)
            if current is not None and current.is_finished:  # it finished between the two reads
                return CheckRunHealthResult(WorkerStatus.SUCCESS, msg)
            msg += "; its pool slots are freed shortly and the run can be re-executed"
        return CheckRunHealthResult(status, msg)


def fail_dead_runs(instance, local_pid_check: bool | None = None) -> list[str]:
    """Mark STARTED runs whose worker is gone as failed and free their pool slots, without a daemon.

    For the backfill CLI, which runs jobs in its own process: a run of a killed backfill
    would otherwise keep its slots until a daemon with run monitoring looks at it.
    `local_pid_check`: as the instance's MonitoredRunLauncher is configured (off under
    another launcher). Returns the ids of the runs failed."""
    if local_pid_check is None:
        launcher = instance.run_launcher
        local_pid_check = isinstance(launcher, MonitoredRunLauncher) and launcher.local_pid_check
    failed = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        status, msg = worker_health(instance, run, local_pid_check)
        if status != WorkerStatus.FAILED:
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != DagsterRunStatus.STARTED:
            continue
        instance.report_run_failed(current, msg + "; its pool slots were freed and the run can be re-executed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed
