"""A real `dagster dev` (webserver + daemon + code server) on a temporary DAGSTER_HOME, for tests.

It listens on 127.0.0.1 only, runs in its own process group and is stopped by its pid
(SIGTERM to the group, then SIGKILL), so nothing outlives the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "egoclean_assets.definitions"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    """`dagster dev -w workspace.yaml` with `env` on top of os.environ; use as a context manager."""

    def __init__(self, home: Path, env: dict[str, str], log: Path):
        self.home, self.env, self.log_path = Path(home), env, Path(log)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "DagsterDev":
        self.home.mkdir(parents=True, exist_ok=True)
        if not (self.home / "dagster.yaml").exists():
            shutil.copy(ROOT / "dagster_home" / "dagster.yaml", self.home / "dagster.yaml")
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env, "DAGSTER_HOME": str(self.home)}
        exe = Path(sys.executable).with_name("dagster")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(exe), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 40), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)  # the group this process leads (start_new_session)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        # children left in the group (code server, run workers) go too
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()
        self.proc = None

    def log_tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            out = json.loads(r.read())
        assert not out.get("errors"), out["errors"]
        return out["data"]

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dagster dev exited: {self.log_tail()}"
            try:
                d = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { "
                                 "locationOrLoadError { __typename } } } } }")
                entries = d["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"] and \
                        entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                    return
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"dagster dev not ready in {timeout} s: {self.log_tail()}")

    def launch(self, partition: str, assets: list[str] | None = None, job: str = "clip_pipeline") -> str:
        """Launch (queue) a run of `job` for one partition, optionally a subset of assets; its run id."""
        selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job}
        if assets:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
            selector["assetCheckSelection"] = []
        params = {"selector": selector, "mode": "default",
                  "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]}}
        d = self.graphql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } } }", {"p": params})
        res = d["launchRun"]
        assert res["__typename"] == "LaunchRunSuccess", res
        return res["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        d = self.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})
        return d["runOrError"]["status"]

    def wait_run(self, run_id: str, timeout: float, statuses=FINISHED) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in statuses:
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {status} after {timeout} s: {self.log_tail()}")
