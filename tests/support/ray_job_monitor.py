"""`ray_job_monitor_sensor` against live Ray jobs, run by tests/cluster/test_ray_job_monitor.py.

Inside a loopback-only network namespace (`tests.support.ray_head.namespace_command`):

- a Ray head with the Jobs API (dashboard) and the runs' `dagster_run` resource;
- a Dagster instance made of deploy/dagster.ray.yaml (EgoCleanRayRunLauncher, run
  monitoring) with SQLite storage in place of PostgreSQL;
- a code server (`--use-python-environment-entry-point`, tests/support/ray_job_defs.py)
  started with the interpreter of an "image": a virtual environment at a path of its own.

Then, as in a deployment whose Ray nodes lack the code server's interpreter:

1. run A of `nap` is launched while the interpreter is there: its Ray job runs, the run
   is STARTED;
2. the interpreter's folder is moved away and run B is launched: its Ray job fails at once
   (`/bin/sh: ...: not found`) and run B stays STARTING (its worker never ran); the folder
   is put back (run A's worker still starts helper processes from it);
2b. the interpreter is a program that exits 0 at once and run C is launched: its Ray job
   SUCCEEDED without the run ever starting (run C stays STARTING); the interpreter is put back;
3. the sensor is evaluated once: runs B and C must be FAILURE with their jobs' outcomes,
   run A left alone;
4. run A's worker (the Ray job's driver) is SIGKILLed: its job fails, run A is STARTED;
   the sensor is evaluated once more: run A must be FAILURE with the job's message.

It prints one JSON report (the last stdout line) and stops what it started by pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import yaml

from tests.support.ray_head import free_port, in_private_namespace, local_ray_head
from tests.support.rehearsal import wait_for

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "ray_job_defs"


def make_image(folder: Path) -> Path:
    """A virtual environment at `folder` sharing this one's packages (symlinks); returns its python."""
    venv = Path(sys.prefix)
    (folder / "bin").mkdir(parents=True)
    shutil.copy(venv / "pyvenv.cfg", folder / "pyvenv.cfg")
    os.symlink(os.path.realpath(sys.executable), folder / "bin" / "python")
    site = Path(sysconfig.get_paths()["purelib"])
    (folder / site.relative_to(venv)).parent.mkdir(parents=True)
    os.symlink(site, folder / site.relative_to(venv))
    return folder / "bin" / "python"


def instance_yaml(home: Path, jobs_api: str) -> None:
    """deploy/dagster.ray.yaml with this head's Jobs API and SQLite storage in `home`."""
    cfg = yaml.safe_load((ROOT / "deploy" / "dagster.ray.yaml").read_text())
    cfg["storage"] = {"sqlite": {"base_dir": str(home / "storage")}}
    cfg["run_launcher"]["config"]["ray"]["address"] = jobs_api
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg))


def run_facts(instance, client, run_id: str) -> dict:
    """A run's status, its failure events' messages, and its Ray job's status and message."""
    from dagster import DagsterEventType

    info = client.get_job_info(f"dagster-run-{run_id}")
    failures = [e.dagster_event.message or e.message
                for e in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)]
    return {"status": instance.get_run_by_id(run_id).status.value, "failures": failures,
            "job_status": info.status.value, "job_message": info.message}


def worker_pid(instance, run_id: str) -> int | None:
    """The run worker's pid, from its "Started process for run (pid: N)" event."""
    from dagster import DagsterEventType

    for e in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        m = re.search(r"Started process for run \(pid: (\d+)\)", e.message or "")
        if m:
            return int(m.group(1))
    return None


def main(out_dir: str) -> None:
    if not in_private_namespace():
        raise SystemExit("the scenario runs only in a loopback-only network namespace (namespace_command)")
    work = Path(out_dir)
    report: dict = {}
    python = make_image(work / "image")
    home = work / "dagster_home"
    home.mkdir()
    dash = free_port()
    # a raylet waits this long for its dashboard agent, which starts slowly on a busy 2-core machine
    os.environ["RAY_agent_register_timeout_ms"] = "180000"
    server = None
    t0 = time.perf_counter()
    with local_ray_head(num_cpus=1, resources={"dagster_run": 2}, log=work / "ray_head.log", dashboard_port=dash,
                        timeout_s=180):  # the dashboard makes a slow start slower on a busy machine
        try:
            from dagster import DagsterInstance, build_sensor_context
            from dagster._core.workspace.context import WorkspaceProcessContext
            from dagster._core.workspace.load_target import GrpcServerTarget
            from dagster._grpc.client import DagsterGrpcClient
            from ray.job_submission import JobSubmissionClient

            from egoclean_assets.launch import _create_run
            from egoclean_assets.sensors import ray_job_monitor_sensor

            jobs_api = f"http://127.0.0.1:{dash}"
            client = wait_for("the Jobs API", lambda: (c := JobSubmissionClient(jobs_api)).list_jobs() is not None
                              and c, 180, 2)
            instance_yaml(home, jobs_api)
            os.environ["DAGSTER_HOME"] = str(home)
            port = free_port()
            server = subprocess.Popen(
                [str(python), "-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
                 "-f", str(ROOT / "tests" / "support" / "ray_job_defs.py"), "--location-name", LOCATION,
                 "--use-python-environment-entry-point"],
                cwd=ROOT, stdout=open(work / "code_server.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True)
            wait_for("the code server", lambda: DagsterGrpcClient(port=port, host="127.0.0.1").ping("x"), 180, 1)
            report["up_s"] = round(time.perf_counter() - t0, 1)
            target = GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name=LOCATION)
            with DagsterInstance.get() as instance, WorkspaceProcessContext(instance, target) as process:
                workspace = process.create_request_context()
                location = workspace.get_code_location(LOCATION)
                repo = location.get_repository("__repository__")
                nap = repo.get_full_job("nap")
                report["entry_point"] = list(nap.get_python_origin().repository_origin.entry_point)

                def launch() -> str:
                    run = _create_run(instance, location, repo, nap, {}, {})
                    instance.launch_run(run.run_id, workspace)
                    return run.run_id

                running = launch()
                wait_for("run A started", lambda: instance.get_run_by_id(running).status.value == "STARTED", 240)
                # the Ray nodes' image lacks the code server's interpreter
                (work / "image").rename(work / "image-elsewhere")
                broken = launch()
                wait_for("run B's Ray job ended", lambda: client.get_job_status(f"dagster-run-{broken}").is_terminal(),
                         120)
                (work / "image-elsewhere").rename(work / "image")  # run A's worker still uses it (log capture)
                # an interpreter that exits 0 without running anything: the job succeeds, the run never starts
                python.rename(python.with_name("python-real"))
                python.write_text("#!/bin/sh\nexit 0\n")
                python.chmod(0o755)
                hollow = launch()
                wait_for("run C's Ray job ended", lambda: client.get_job_status(f"dagster-run-{hollow}").is_terminal(),
                         120)
                python.unlink()
                python.with_name("python-real").rename(python)
                runs = {"A": running, "B": broken, "C": hollow}
                report["before"] = {k: run_facts(instance, client, r) for k, r in runs.items()}
                tick = ray_job_monitor_sensor(build_sensor_context(instance=instance))
                report["tick1"] = tick.skip_message
                report["after1"] = {k: run_facts(instance, client, r) for k, r in runs.items()}
                # run A's worker (the job's driver) dies, as an OOM kill would take it
                pid = worker_pid(instance, running)
                report["killed_worker"] = pid
                os.kill(pid, signal.SIGKILL)
                wait_for("run A's Ray job ended", lambda: client.get_job_status(f"dagster-run-{running}").is_terminal(),
                         120)
                report["before2"] = {"A": run_facts(instance, client, running)}
                tick = ray_job_monitor_sensor(build_sensor_context(instance=instance))
                report["tick2"] = tick.skip_message
                report["after2"] = {"A": run_facts(instance, client, running)}
                report["runs"] = runs
        except BaseException as e:
            import traceback

            report["error"] = "".join(traceback.format_exception(e))[-4000:]
            report["code_server_log"] = (work / "code_server.log").read_text(errors="replace")[-2000:] \
                if (work / "code_server.log").exists() else None
        finally:
            if server is not None and server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
