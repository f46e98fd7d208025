"""A local Ray head for the tests and the benchmarks, in the loopback-only network namespace it must run in.

Ray binds every interface and probes an outside address at start-up, so it never starts
on the host network here: a test or benchmark re-runs itself (or its scenario module)
inside a private network namespace with only loopback up (`namespace_command`, root:
`unshare --net`), and there `local_ray_head` starts one head on 127.0.0.1 with token
authentication, connects this process, and at exit stops the head's process group by
pid and then every other process of the namespace (detached actors and workers live in
their own sessions; everything in the namespace was started by it). Used by
tests/support/ray_scenario.py, tests/cluster/test_ray_pipeline.py, benchmarks/bench_ray.py
and benchmarks/gpu_ray_encoder.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def namespace_command(python_args: Sequence[str]) -> list[str]:
    """The command that runs `python <python_args>` in a new network namespace with only loopback up."""
    inner = "ip link set lo up && exec " + shlex.join([sys.executable, *map(str, python_args)])
    return ["unshare", "--net", "--", "bash", "-c", inner]


def rerun_in_loopback_namespace(module: str, args: Sequence[str], env: dict | None = None) -> int:
    """Run `python -m module args` from the repository root in a loopback-only namespace; its exit status."""
    return subprocess.run(namespace_command(["-m", module, *args]), cwd=ROOT, env=env).returncode


def in_private_namespace() -> bool:
    """Whether this process runs in a network namespace made for it, as `namespace_command` makes one:
    not its parent's, and with no interface but loopback.

    (Merely "not pid 1's" is not enough: a container's own namespace differs from pid 1's
    too, and holds other people's processes.)"""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
        own = os.readlink("/proc/self/ns/net") != os.readlink(f"/proc/{os.getppid()}/ns/net")
    except OSError:
        return False
    return own and {line.split(":", 1)[0].strip() for line in lines} == {"lo"}


def kill_namespace_but_me() -> list[int]:
    """SIGKILL every other process in this network namespace (all started by it); refused on the host's."""
    if not in_private_namespace():
        raise RuntimeError("kill_namespace_but_me outside a private network namespace would kill the host's processes")
    mine = os.readlink("/proc/self/ns/net")
    killed = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if os.readlink(d / "ns" / "net") != mine:
                    continue
                os.kill(int(d.name), signal.SIGKILL)
                killed.append(int(d.name))
            except OSError:
                continue
    return killed


@contextlib.contextmanager
def local_ray_head(num_cpus: int, resources: dict[str, float], log: Path | None = None, timeout_s: float = 60.0,
                   namespace: str = "egoclean", dashboard_port: int | None = None) -> Iterator[subprocess.Popen]:
    """A Ray head on 127.0.0.1 (`num_cpus`, no GPU, custom `resources` such as {"GPU_STANDIN": 1}) with this
    process connected (`ray.init`, RAY_ADDRESS set for the code under test); yields the head's process.
    With `dashboard_port`, the dashboard (and so the Jobs API) listens there on 127.0.0.1.

    Only inside a private network namespace (see the module docstring). Token authentication
    is on, with a token made for this head unless RAY_AUTH_TOKEN is set (never written to ~/.ray)."""
    if not in_private_namespace():
        raise RuntimeError("a Ray head starts only in a loopback-only network namespace (namespace_command)")
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    # Ray's temp folder of this head's own (short: socket paths): /tmp/ray/ray_current_cluster is shared
    # by every Ray on the machine, other namespaces included, and a process looking its cluster up there
    # found another test's head (tests/support/rehearsal.py met it: a job's driver dialled a gone cluster)
    own_tmp = None
    if not os.environ.get("RAY_TMPDIR"):
        own_tmp = os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    port = free_port()
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--num-gpus=0",
         f"--resources={json.dumps(resources)}", "--disable-usage-stats",
         *(["--include-dashboard=false"] if dashboard_port is None else
           ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"])],
        env=dict(os.environ, RAY_ADDRESS=""), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import ray

        os.environ["RAY_ADDRESS"] = f"127.0.0.1:{port}"
        deadline = time.time() + timeout_s
        while True:
            try:
                ray.init(address=os.environ["RAY_ADDRESS"], namespace=namespace, log_to_driver=False)
                break
            except Exception:
                if time.time() > deadline or head.poll() is not None:
                    raise
                time.sleep(1)
        yield head
    finally:
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        # The head's process group: the GCS, raylet and every worker it started.
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)
        if log is not None:
            out.close()
        # Detached actors and workers live in their own sessions: none may outlive the head.
        kill_namespace_but_me()
        if own_tmp is not None:
            shutil.rmtree(own_tmp, ignore_errors=True)
            os.environ.pop("RAY_TMPDIR", None)
