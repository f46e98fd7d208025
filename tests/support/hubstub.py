"""A stand-in Hugging Face hub on 127.0.0.1 that serves a local folder as a dataset repo.

Enough of the hub's HTTP API for the real huggingface_hub client (HfFileSystem, HfApi,
`resolve` downloads) to list and read files: repo info, paginated `tree` listings,
`paths-info`, and `resolve` GET/HEAD with Range (206, Content-Range, Accept-Ranges,
ETag, X-Repo-Commit). Point a client at `hub.endpoint` (pass `endpoint=`: the
huggingface_hub constants read HF_ENDPOINT only once, at import).

Faults for tests, each on requests whose path matches a regex (or "resolve" / "api" /
"any"), for `times` requests (None: forever): `fail(status)`, `reset()` (connection
reset mid-body), `short()` (body cut short of its Content-Length), `stall(seconds)`
(stops answering). `token=` gates the repo (401 without a token, 403 with a wrong one).
Every request is recorded (method, path, query, headers, status, body bytes sent).

Also here: `make_tar` / `make_worker`, tiny datasets in the real Egocentric-10K layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import struct
import tarfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

DEFAULT_REPO = "builddotai/Egocentric-10K"
DEFAULT_SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Fault:
    """One injected fault; `hits` counts the requests it has hit."""

    kind: str  # "status" | "reset" | "short" | "stall"
    match: str
    times: int | None
    status: int = 503
    seconds: float = 0.0
    keep: int | None = None  # body bytes sent before a reset / cut (None: half)
    hits: int = 0

    def matches(self, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.match == "any":
            return True
        if self.match == "resolve":
            return "/resolve/" in path
        if self.match == "api":
            return path.startswith("/api/")
        return re.search(self.match, path) is not None


@dataclass
class Request:
    """A request the stub received, and what it answered."""

    method: str
    path: str  # unquoted, without the query
    query: dict
    headers: dict  # lower-cased names
    status: int = 0
    sent: int = 0  # body bytes written

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


class HubStub:
    """A threaded HTTP server that serves `root` as the dataset `repo_id`."""

    def __init__(
        self,
        root: str | Path,
        repo_id: str = DEFAULT_REPO,
        token: str | None = None,
        gate_api: bool = True,
        page_size: int = 1000,
        sha: str = DEFAULT_SHA,
        revisions: tuple[str, ...] = ("main",),
        redirect: bool | str = False,
    ):
        self.root = Path(root)
        self.repo_id = repo_id
        self.token = token  # None: public; else the one token accepted
        self.gate_api = gate_api  # gate listings too (False: only downloads, like the real hub)
        self.page_size = page_size
        self.sha = sha
        self.revisions = set(revisions) | {sha}
        # Answer resolve with a 302 to a /cdn/ URL, as the hub does for LFS files; a host
        # name (e.g. "localhost") makes it a different origin, like the hub's real CDN.
        self.redirect = redirect
        # A broken server: tree listings always link a next page (empty past the end).
        self.endless_pages = False
        # A broken server: resolve redirects to itself forever.
        self.redirect_loop = False
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._hashes: dict[tuple[str, float, int], tuple[str, str]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> "HubStub":
        stub = self

        class Handler(_Handler):
            hub = stub

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HubStub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "HubStub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The hf:// URL of the served dataset."""
        return f"hf://datasets/{self.repo_id}"

    # -- faults
    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(self, status: int = 503, times: int | None = 1, match: str = "resolve") -> Fault:
        """Answer `times` matching requests with HTTP `status` (None: forever)."""
        return self._add(Fault("status", match, times, status=status))

    def reset(self, times: int | None = 1, match: str = "resolve", keep: int | None = None) -> Fault:
        """Send headers and `keep` body bytes (default half), then reset the connection.

        Only bodies longer than `keep` count towards `times`."""
        return self._add(Fault("reset", match, times, keep=keep))

    def short(self, times: int | None = 1, match: str = "resolve", keep: int | None = None) -> Fault:
        """Send headers and `keep` body bytes (default half), then close: a body cut short."""
        return self._add(Fault("short", match, times, keep=keep))

    def stall(self, seconds: float = 30.0, times: int | None = 1, match: str = "resolve") -> Fault:
        """Accept the request and say nothing for `seconds` (then answer normally)."""
        return self._add(Fault("stall", match, times, seconds=seconds))

    def clear(self) -> None:
        """Forget faults and recorded requests."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _take_fault(self, path: str, kinds: tuple[str, ...], body: int | None = None) -> Fault | None:
        """The first live fault of `kinds` for `path`; body faults only hit bodies they can cut."""
        with self._lock:
            for f in self.faults:
                if f.kind not in kinds or not f.matches(path):
                    continue
                if body is not None and f.keep is not None and body <= f.keep:
                    continue
                f.hits += 1
                return f
        return None

    # -- inspection
    def resolve_requests(self) -> list[Request]:
        return [r for r in list(self.requests) if "/resolve/" in r.path or r.path.startswith("/cdn/")]

    def bytes_sent(self, path_contains: str = "") -> int:
        """Body bytes sent by `resolve` (file) answers, optionally for one file."""
        return sum(r.sent for r in self.resolve_requests() if path_contains in r.path)

    # -- files
    def file_hashes(self, path: Path) -> tuple[str, str]:
        """(git-style sha1 oid, sha256) of a served file, cached by mtime and size."""
        st = path.stat()
        key = (str(path), st.st_mtime, st.st_size)
        if key not in self._hashes:
            sha1 = hashlib.sha1(f"blob {st.st_size}\0".encode())
            sha256 = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    sha1.update(chunk)
                    sha256.update(chunk)
            self._hashes[key] = (sha1.hexdigest(), sha256.hexdigest())
        return self._hashes[key]


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; the class attribute `hub` is the HubStub it serves."""

    hub: HubStub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    _rec: Request

    def log_message(self, format: str, *args) -> None:  # keep pytest output clean
        pass

    # -- plumbing
    def _record(self) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self._rec = Request(self.command, unquote(path), query, {k.lower(): v for k, v in self.headers.items()})
        with self.hub._lock:
            self.hub.requests.append(self._rec)
        return path, query

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, ctype: str = "application/json"
    ) -> None:
        self._rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self._rec.sent += len(body)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _authorised(self) -> bool:
        tok = self.hub.token
        if tok is None:
            return True
        auth = self.headers.get("Authorization", "")
        if not auth:
            self._error(401, "Access to this dataset is restricted. You must be authenticated.", "GatedRepo")
            return False
        if auth != f"Bearer {tok}":
            self._error(403, "Access to this dataset is restricted: accept its conditions.", "GatedRepo")
            return False
        return True

    def _apply_fault(self, path: str) -> bool:
        """Apply a status or stall fault; True when the request has been answered."""
        fault = self.hub._take_fault(unquote(path), ("status", "stall"))
        if fault is None:
            return False
        if fault.kind == "stall":
            self.hub._closing.wait(fault.seconds)
            return False
        self._error(fault.status, f"injected HTTP {fault.status}")
        return True

    # -- routing
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length else b""
        self._dispatch()

    def _dispatch(self) -> None:
        path, query = self._record()
        if self._apply_fault(path):
            return
        repo = re.escape(self.hub.repo_id)
        try:
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
                return self._repo_info(m.group(1), unquote(m.group(2) or "main"))
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path):
                return self._tree(m.group(1), unquote(m.group(2)), unquote((m.group(3) or "")[1:]), query)
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/paths-info/([^/]+)", path):
                return self._paths_info(m.group(1), unquote(m.group(2)))
            if m := re.fullmatch(rf"/datasets/({repo})/resolve/([^/]+)/(.+)", path):
                return self._resolve(path, unquote(m.group(2)), unquote(m.group(3)), cdn=False)
            if m := re.fullmatch(rf"/({repo})/resolve/([^/]+)/(.+)", path):  # as a model repo
                return self._resolve(path, unquote(m.group(2)), unquote(m.group(3)), cdn=False)
            if m := re.fullmatch(r"/cdn/([^/]+)/(.+)", path):
                return self._resolve(path, unquote(m.group(1)), unquote(m.group(2)), cdn=True)
            self._error(404, f"no route for {path}")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- helpers
    def _check_repo(self, repo_id: str, revision: str) -> bool:
        if repo_id != self.hub.repo_id:
            self._error(404, "Repository not found", "RepoNotFound")
            return False
        if self.hub.gate_api and not self._authorised():
            return False
        if revision not in self.hub.revisions:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return False
        return True

    def _local(self, rel: str) -> Path | None:
        rel = rel.strip("/")
        if any(p in ("..", ".") for p in rel.split("/")):
            return None
        p = self.hub.root / rel if rel else self.hub.root
        return p if p.exists() else None

    def _entry(self, p: Path) -> dict:
        rel = p.relative_to(self.hub.root).as_posix()
        if p.is_dir():
            return {"type": "directory", "oid": hashlib.sha1(rel.encode()).hexdigest(), "path": rel}
        oid, sha256 = self.hub.file_hashes(p)
        entry = {"type": "file", "oid": oid, "size": p.stat().st_size, "path": rel}
        if p.suffix in (".tar", ".mp4"):
            entry["lfs"] = {"oid": sha256, "size": p.stat().st_size, "pointerSize": 134}
        return entry

    # -- endpoints
    def _repo_info(self, repo_id: str, revision: str) -> None:
        if not self._check_repo(repo_id, revision):
            return
        info = {
            "_id": "stub",
            "id": self.hub.repo_id,
            "author": self.hub.repo_id.split("/")[0],
            "sha": self.hub.sha,
            "private": False,
            "gated": "manual" if self.hub.token else False,
            "disabled": False,
            "tags": [],
            "lastModified": "2025-01-01T00:00:00.000Z",
            "createdAt": "2025-01-01T00:00:00.000Z",
        }
        self._send(200, json.dumps(info).encode())

    def _tree(self, repo_id: str, revision: str, rel: str, query: dict) -> None:
        if not self._check_repo(repo_id, revision):
            return
        p = self._local(rel)
        if p is None or not p.is_dir():
            return self._error(404, f"{rel} does not exist on {revision}", "EntryNotFound")
        recursive = query.get("recursive", "false").lower() == "true"
        items = sorted(p.rglob("*") if recursive else p.iterdir())
        entries = [self._entry(x) for x in items if not x.name.startswith(".")]
        start = int(query.get("cursor", "0") or 0)
        page = entries[start : start + self.hub.page_size]
        headers = {}
        if start + self.hub.page_size < len(entries) or self.hub.endless_pages:
            q = (f"recursive={str(recursive).lower()}&expand={query.get('expand', 'false')}"
                 f"&cursor={start + self.hub.page_size}")
            rel_q = "/" + quote(rel, safe="") if rel else ""
            nxt = f"{self.hub.endpoint}/api/datasets/{repo_id}/tree/{quote(revision, safe='')}{rel_q}?{q}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._send(200, json.dumps(page).encode(), headers)

    def _paths_info(self, repo_id: str, revision: str) -> None:
        if not self._check_repo(repo_id, revision):
            return
        form = parse_qs(getattr(self, "_body", b"").decode())
        out = []
        for rel in form.get("paths", []):
            p = self._local(rel)
            if p is not None:
                out.append(self._entry(p))
        self._send(200, json.dumps(out).encode())

    def _resolve(self, path: str, revision: str, rel: str, cdn: bool) -> None:
        if not cdn:
            if not self._authorised():
                return
            if revision not in self.hub.revisions:
                return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        p = self._local(rel)
        if p is None or not p.is_file():
            return self._error(404, f"Entry not found: {rel}", "EntryNotFound")
        oid, sha256 = self.hub.file_hashes(p)
        size = p.stat().st_size
        common = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{sha256}"',
            "X-Repo-Commit": self.hub.sha,
            "X-Linked-Etag": f'"{sha256}"',
            "X-Linked-Size": str(size),
        }
        if self.hub.redirect_loop:
            return self._send(302, b"", {**common, "Location": f"{self.hub.endpoint}{self.path}"})
        if self.hub.redirect and not cdn:
            base = self.hub.endpoint
            if isinstance(self.hub.redirect, str):
                base = base.replace("127.0.0.1", self.hub.redirect)
            loc = f"{base}/cdn/{quote(revision, safe='')}/{quote(rel)}"
            return self._send(302, b"", {**common, "Location": loc})
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._error(416, f"bad Range {rng!r}")
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or start > end:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            status = 206
        length = end - start + 1
        self._rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in common.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = length
        fault = self.hub._take_fault(unquote(path), ("reset", "short"), body=length)
        if fault is not None:
            limit = min(length, fault.keep if fault.keep is not None else length // 2)
        with open(p, "rb") as f:
            f.seek(start)
            left = limit
            while left > 0:
                chunk = f.read(min(1 << 16, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                self._rec.sent += len(chunk)
                left -= len(chunk)
        if limit < length:
            self.wfile.flush()
            self.close_connection = True  # "short": the server closes (FIN) mid-body
            if fault is not None and fault.kind == "reset":
                # SO_LINGER 0 and a real close (no file objects left holding the socket):
                # the peer gets an RST, a "connection reset by peer".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.wfile.close()
                self.connection.close()


# ---------------------------------------------------------------------------- datasets


def make_tar(path: str | Path, members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> Path:
    """Write a tar of (name, bytes) members; names are used as given (even unsafe ones)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def fake_video(key: str, size: int) -> bytes:
    """Deterministic stand-in bytes for a clip's MP4 (sources never decode it)."""
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def sidecar(key: str, size: int, **extra) -> dict:
    f, w, i = key.split("_")
    return {
        "factory_id": f"factory_{f[-3:]}",
        "worker_id": f"worker_{w[-3:]}",
        "video_index": int(i),
        "duration_sec": 10.0,
        "width": 64,
        "height": 48,
        "fps": 30.0,
        "size_bytes": size,
        "codec": "h265",
        **extra,
    }


def make_worker(
    root: str | Path,
    factory: int = 1,
    worker: int = 1,
    shards: tuple[int, ...] = (3, 2),
    video_size: int = 50_000,
    intrinsics: dict | None = None,
) -> dict[str, list[str]]:
    """A worker folder in the real layout: intrinsics.json and shards of clips.

    `shards` gives the clips per shard; numbering continues across shards (part00 holds
    00000..00002, part01 00003..., as in the dataset). Returns {shard name: [clip ids]}."""
    wdir = Path(root) / f"factory_{factory:03d}" / "workers" / f"worker_{worker:03d}"
    wdir.mkdir(parents=True, exist_ok=True)
    intr = intrinsics or {
        "model": "fisheye", "image_width": 64, "image_height": 48, "fx": 30.0, "fy": 30.0,
        "cx": 32.0, "cy": 24.0, "k1": 0.01, "k2": 0.0, "k3": 0.0, "k4": 0.0,
    }
    (wdir / "intrinsics.json").write_text(json.dumps(intr))
    out: dict[str, list[str]] = {}
    index = 0
    for part, n in enumerate(shards):
        name = f"factory{factory:03d}_worker{worker:03d}_part{part:02d}.tar"
        members, keys = [], []
        for _ in range(n):
            key = f"factory{factory:03d}_worker{worker:03d}_{index:05d}"
            size = video_size + 7 * index  # sizes differ, and are not multiples of 512
            members += [(f"{key}.mp4", fake_video(key, size)), (f"{key}.json", json.dumps(sidecar(key, size)).encode())]
            keys.append(key)
            index += 1
        make_tar(wdir / name, members)
        out[name] = keys
    return out


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubStub]:
    """A running HubStub serving the (initially empty) folder tmp_path/"hub"."""
    root = tmp_path / "hub"
    root.mkdir()
    with HubStub(root) as stub:
        yield stub
