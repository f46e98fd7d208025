"""Dataset access: list, index and fetch Egocentric-10K clips from hf://, local or fsspec URLs.

One `Source` over three kinds of location with the same layout
(`factory_XXX/workers/worker_YYY/{intrinsics.json, factoryXXX_workerYYY_partNN.tar}`):

- `hf://datasets/<owner>/<name>[@revision][/subfolder]` — listed with the hub's tree API
  (bounded pages, per-request timeout) and read with ranged GETs on the hub's `resolve`
  URLs, both through huggingface_hub's own HTTP session, headers, URL builder and error
  mapping. (HfFileSystem's listing has no timeout and no page bound; its readers
  retry on a fixed schedule with no timeout and hold a whole range in memory; a clip
  needs bounded, configurable retries, a timeout, and a streamed body that resumes
  where a dropped connection left off.)
- a local directory (or `file://`), and any other fsspec URL (`s3://...`, with its
  fsspec package installed) — listed and read with fsspec.

A clip is found by indexing its worker's shards from their tar headers (see
`egoclean.ingest.tarindex`); the index is cached as a small JSON file keyed by the source URL,
revision, shard path, size and etag. Only the clip's two members are downloaded.
The HF token is sent in the Authorization header only; it never appears in a
message, a repr or a file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from egoclean.core import defaults, jsonin, retry
from egoclean.core.atomic import atomic_path, write_json
from egoclean.core.errors import (
    AuthError,
    EgoCleanError,
    IntrinsicsError,
    InvalidInputError,
    NotFoundError,
    SourceError,
    TarError,
)
from egoclean.core.ids import ClipId
from egoclean.core.secrets import hf_token, redact
from egoclean.ingest.tarindex import DEFAULT_READAHEAD, TarMember, check_member_name, scan_headers

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # streamed download chunk: memory stays at one chunk whatever the clip size
# Shards indexed at once by list_clips: a header scan is ~one round trip per clip, so on
# a real network latency, not bandwidth, sets its pace.
DEFAULT_PARALLEL = 4
MAX_JSON_BYTES = 1 << 20  # sidecars and intrinsics are ~300 bytes; they are read into memory
# A hub tree listing: pages of up to 1000 entries (~300 KB); a dataset folder needs one or
# two. A server that keeps linking further pages is cut off here.
MAX_LISTING_PAGES = 1000
MAX_INDEX_BYTES = 64 << 20  # a cached shard index: ~150 bytes per member
MAX_LISTING_PAGE_BYTES = 16 << 20
INDEX_VERSION = 1

# Matched with fullmatch and ASCII digits only (see egoclean.core.ids.CLIP_ID_RE).
_FACTORY_RE = re.compile(r"factory_?([0-9]{3})")
_WORKER_RE = re.compile(r"worker_?([0-9]{3})")
_SHARD_RE = re.compile(r"(factory[0-9]{3}_worker[0-9]{3})_part([0-9]+)\.tar")
_MEMBER_RE = re.compile(r"(factory[0-9]{3}_worker[0-9]{3}_[0-9]{5})\.(mp4|json)")

T = TypeVar("T")

# OSErrors worth another try: a network file system or an object store hiccup. Any other
# errno (EISDIR, ENOTDIR, ENAMETOOLONG, EROFS, EINVAL...) is permanent and fails at once;
# an OSError without an errno (most fsspec network errors) is retried.
_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, n) for n in ("EAGAIN", "EINTR", "EBUSY", "EIO", "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED",
                                "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "ESTALE", "EPIPE")
    if hasattr(errno, n)
)


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ShardRef:
    """One tar shard: dataset-relative path, file name, size in bytes, and etag/version."""

    path: str
    name: str
    size: int
    etag: str = ""

    def __str__(self) -> str:
        return f"{self.name}\t{self.size} bytes"

    def to_dict(self) -> dict:
        return {"path": self.path, "name": self.name, "size": self.size, "etag": self.etag}


@dataclass
class ShardIndex:
    """The regular-file members of one shard (from its tar headers).

    `reads` is the number of ranged reads the scan made (0 when loaded from cache)."""

    shard: ShardRef
    members: list[TarMember]
    reads: int = 0
    bytes_read: int = 0
    from_cache: bool = False
    _by_name: dict[str, TarMember] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {m.name: m for m in self.members}

    def member(self, name: str) -> TarMember | None:
        return self._by_name.get(name)

    def clip_ids(self) -> list[ClipId]:
        """Clips with a video or a sidecar in this shard (a missing half fails at fetch)."""
        keys = {m.group(1) for m in (_MEMBER_RE.fullmatch(x.name) for x in self.members) if m}
        return sorted(ClipId.parse(k) for k in keys)

    def to_dict(self) -> dict:
        return {"shard": self.shard.to_dict(), "members": [m.to_dict() for m in self.members]}


@dataclass(frozen=True)
class FetchedClip:
    """A clip fetched to local files: the MP4, its sidecar (parsed and on disk), its shard."""

    clip_id: ClipId
    mp4_path: Path
    sidecar: dict
    sidecar_path: Path
    size_bytes: int
    shard: str

    def as_dict(self) -> dict:
        return {
            "clip_id": self.clip_id.key,
            "mp4_path": str(self.mp4_path),
            "sidecar_path": str(self.sidecar_path),
            "size_bytes": self.size_bytes,
            "shard": self.shard,
            "sidecar": dict(self.sidecar),
        }


# ---------------------------------------------------------------------------- retries


# What to do when retries run out: the fault is the network's or the server's, not the input's.
GAVE_UP_HINT = "; the server or network is failing: rerun later (finished clips are kept), or raise retries/timeout"


class _Retryable(Exception):
    """A transient failure (network, timeout, 408/429/5xx, short body) worth another try."""


def _backoff(retries: int, backoff: float) -> retry.Backoff:
    """The retry policy of a source's reads: `retries` after the first try, waits from `backoff` doubling."""
    return retry.Backoff(attempts=retries + 1, base_sec=backoff, cap_sec=max(backoff, defaults.SOURCE_BACKOFF_CAP_SEC))


def _with_retries(fn: Callable[[], T], what: str, retries: int, backoff: float) -> T:
    """Call `fn`, retrying _Retryable failures (egoclean.core.retry), then SourceError."""

    def note(e: BaseException, failures: int, delay: float) -> None:
        log.warning("%s: %s; retrying in %.2f s", what, redact(str(e)), delay)

    try:
        return retry.call(fn, _backoff(retries, backoff), _Retryable, on_retry=note)
    except retry.GaveUp as g:
        raise SourceError(
            redact(f"{what}: {g.error} (gave up after {g.attempts} attempts){GAVE_UP_HINT}")
        ) from None


# ---------------------------------------------------------------------------- transports


class _Transport:
    """Lists folders and reads byte ranges of one dataset root."""

    url: str
    retries: int
    backoff: float

    def ls(self, rel: str) -> list[dict]:
        """Entries of folder `rel`: dicts with name (basename), type, size, etag."""
        raise NotImplementedError

    def read(self, rel: str, start: int, length: int) -> bytes:
        """Bytes [start, start+length) of file `rel` (fewer only at its end)."""
        raise NotImplementedError

    def stream(self, rel: str, start: int, length: int) -> Iterator[bytes]:
        """Bytes [start, start+length) of file `rel` in chunks; exactly `length` in total."""
        raise NotImplementedError

    def display(self, rel: str = "") -> str:
        return f"{self.url.rstrip('/')}/{rel}" if rel else self.url


def _auth_message(url: str, status: int, token_sent: bool, repo_id: str) -> str:
    page = f"https://huggingface.co/datasets/{repo_id}"
    why = "the token was refused" if token_sent else "no token was sent"
    return (
        f"access to {url} was refused (HTTP {status}; {why}). The dataset {repo_id} is gated: "
        f"log in and accept its conditions on {page}, then set HF_TOKEN (environment or .env) "
        "to an access token of that account"
    )


class _HfTransport(_Transport):
    """A dataset repo on a Hugging Face hub (the real one, or a stand-in via `endpoint`)."""

    def __init__(
        self,
        repo_id: str,
        prefix: str,
        revision: str | None,
        token: str | bool | None,
        endpoint: str | None,
        retries: int,
        backoff: float,
        timeout: float,
    ):
        from huggingface_hub import constants

        self.repo_id, self.prefix = repo_id, prefix.strip("/")
        self.revision = revision
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._token = token
        self.url = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")
        if self.prefix:
            self.url += f"/{self.prefix}"
        self._listings: dict[str, list[dict]] = {}  # folder -> entries, for this Source's lifetime

    def _repo_path(self, rel: str) -> str:
        return "/".join(p for p in (self.prefix, rel.strip("/")) if p)

    def http_url(self, rel: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(
            self.repo_id,
            self._repo_path(rel),
            repo_type="dataset",
            revision=self.revision,
            endpoint=self.endpoint,
        )

    def _headers(self, start: int, end_incl: int) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        headers = build_hf_headers(token=self._token, library_name="egoclean")
        headers["Range"] = f"bytes={start}-{end_incl}"
        return headers

    # -- listing
    def ls(self, rel: str) -> list[dict]:
        path = self._repo_path(rel)
        if path in self._listings:
            return self._listings[path]
        try:
            entries = self._list_tree(path, f"listing {self.display(rel)}")
        except EgoCleanError:
            raise
        except Exception as e:
            raise self._map_listing_error(e, rel) from None
        out = []
        for e in entries:
            lfs = e.get("lfs") if isinstance(e.get("lfs"), dict) else {}
            out.append(
                {
                    "name": str(e["path"]).rstrip("/").rsplit("/", 1)[-1],
                    "type": "directory" if e.get("type") == "directory" else "file",
                    "size": int(e.get("size") or 0),
                    "etag": str(lfs.get("oid") or e.get("xetHash") or e.get("oid") or ""),
                }
            )
        self._listings[path] = out
        return out

    def _list_tree(self, path: str, what: str) -> list[dict]:
        """One folder of the repo from the hub's tree API, page by page, in this thread.

        huggingface_hub's own listing (HfFileSystem, list_repo_tree) sends its requests
        without a timeout and follows "next" links without end: a server that stops
        answering hangs it, and one that always links another page keeps it fetching
        forever. Here every request has `timeout` (retried like reads), the whole
        listing has timeout x (retries + 1) seconds and at most MAX_LISTING_PAGES pages,
        and nothing runs on once the caller has its error."""
        from urllib.parse import quote

        import httpx2  # huggingface_hub's HTTP library
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        from egoclean.core import jsonin

        url: str | None = (
            f"{self.endpoint}/api/datasets/{self.repo_id}/tree/{quote(self.revision or 'main', safe='')}"
            + (f"/{quote(path, safe='/')}" if path else "")
        )
        headers = build_hf_headers(token=self._token, library_name="egoclean")
        budget = self.timeout * (self.retries + 1)
        deadline = time.monotonic() + budget
        entries: list[dict] = []
        pages = 0

        def get_page(page_url: str) -> Any:
            try:
                r = get_session().get(page_url, headers=headers, timeout=self.timeout, follow_redirects=True)
            except httpx2.TimeoutException:
                raise _Retryable(f"no complete answer within {self.timeout:g} s (server not answering)") from None
            except httpx2.TooManyRedirects:
                raise SourceError(f"{what}: the server redirects in a loop (too many redirects)") from None
            except httpx2.TransportError as e:
                raise _Retryable(f"{type(e).__name__}: {e}") from None
            if r.status_code in (408, 429) or r.status_code >= 500:
                raise _Retryable(f"HTTP {r.status_code}")
            hf_raise_for_status(r)
            return r

        while url:
            if pages >= MAX_LISTING_PAGES or time.monotonic() > deadline:
                raise SourceError(
                    f"{what}: the server kept linking further pages ({pages} pages, {len(entries)} entries in "
                    f"{budget - (deadline - time.monotonic()):.1f} s; a dataset folder needs a few, the limit is "
                    f"{MAX_LISTING_PAGES} pages within {budget:g} s): it does not behave like a Hugging Face hub"
                )
            r = _with_retries(lambda: get_page(url), what, self.retries, self.backoff)  # noqa: B023 (called at once)
            page = jsonin.loads(r.content, f"{what}: page {pages + 1}", SourceError, max_bytes=MAX_LISTING_PAGE_BYTES)
            if not isinstance(page, list) or not all(isinstance(e, dict) and "path" in e for e in page):
                raise SourceError(f"{what}: page {pages + 1} is not a list of tree entries")
            entries += page
            pages += 1
            url = r.links.get("next", {}).get("url")
        return entries

    def _map_listing_error(self, e: BaseException, rel: str) -> EgoCleanError:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        where = self.display(rel)
        chain: list[BaseException] = []
        cur: BaseException | None = e
        while cur is not None and len(chain) < 8:
            chain.append(cur)
            cur = cur.__cause__ or cur.__context__
        for c in chain:
            status = getattr(getattr(c, "response", None), "status_code", None)
            if isinstance(c, GatedRepoError) or status in (401, 403):
                return AuthError(_auth_message(where, status or 403, bool(self._token), self.repo_id))
        for c in chain:
            if isinstance(c, RevisionNotFoundError):
                return NotFoundError(
                    f"revision {self.revision!r} not found in dataset {self.repo_id} ({self.endpoint})"
                )
            if isinstance(c, RepositoryNotFoundError):
                return NotFoundError(f"dataset {self.repo_id} not found on {self.endpoint}")
        if isinstance(e, (FileNotFoundError, EntryNotFoundError)):
            return NotFoundError(f"{where} not found")
        if isinstance(e, OfflineModeIsEnabled):
            return SourceError(f"{where}: HF_HUB_OFFLINE is set, the hub cannot be reached")
        import httpx2

        if isinstance(e, httpx2.TransportError):
            return SourceError(
                redact(f"listing {where} failed: cannot reach {self.endpoint} ({type(e).__name__}: {e})")
            )
        if isinstance(e, HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", "?")
            return SourceError(redact(f"listing {where} failed: HTTP {status} from {self.endpoint}"))
        return SourceError(redact(f"listing {where} failed: {type(e).__name__}: {e}"))

    # -- reading
    def _check_response(self, r: Any, url: str, start: int, length: int) -> None:
        status = r.status_code
        if status == 206:
            cr = r.headers.get("content-range", "")
            if not cr.startswith(f"bytes {start}-"):
                raise SourceError(f"{url}: asked for bytes from {start}, got Content-Range {cr!r}")
            return
        if status == 200:
            if start == 0:
                return  # the server ignored Range: the first `length` bytes are still right
            raise SourceError(f"{url}: the server ignored the Range request (HTTP 200)")
        if status in (401, 403):
            raise AuthError(_auth_message(url, status, bool(self._token), self.repo_id))
        if status == 404:
            raise NotFoundError(f"{url} not found (HTTP 404)")
        if status == 416:
            raise TarError(f"{url}: bytes {start}..{start + length} are past the end of the file (truncated?)")
        if status in (408, 429) or status >= 500:
            raise _Retryable(f"HTTP {status}")
        raise SourceError(f"{url}: unexpected HTTP {status}")

    def _open(self, url: str, start: int, length: int):
        """A streamed ranged GET on huggingface_hub's shared HTTP client (redirects followed;
        the client drops Authorization when a redirect leaves the hub's host)."""
        from huggingface_hub.utils import get_session

        return get_session().stream("GET", url, headers=self._headers(start, start + length - 1), timeout=self.timeout)

    def read(self, rel: str, start: int, length: int) -> bytes:
        return b"".join(self.stream(rel, start, length, exact=False))

    def stream(self, rel: str, start: int, length: int, exact: bool = True) -> Iterator[bytes]:
        """Ranged GETs from `start`; a dropped or failed request is retried (bounded,
        exponential backoff) from the first byte not yet received."""
        import httpx2  # huggingface_hub's HTTP library

        pos, end = start, start + length
        tries = _backoff(self.retries, self.backoff).start()
        url = self.http_url(rel)

        def reason(e: BaseException) -> str:
            return str(e) if isinstance(e, _Retryable) else f"{type(e).__name__}: {e}"

        def note(e: BaseException, failures: int, delay: float) -> None:
            # `pos` is read when called: the retry resumes from the first byte not yet received
            log.warning("%s: %s; retrying from byte %d in %.2f s", url, redact(reason(e)), pos, delay)

        while pos < end:
            try:
                with self._open(url, pos, end - pos) as r:
                    self._check_response(r, url, pos, end - pos)
                    # Pieces as they arrive (not CHUNK-sized): a dropped connection then
                    # loses nothing already received, and the retry resumes right there.
                    for chunk in r.iter_bytes():
                        if not chunk:
                            continue
                        chunk = chunk[: end - pos]
                        pos += len(chunk)
                        yield chunk
                        if pos >= end:
                            break
                if pos < end:
                    if not exact and r.status_code in (200, 206):
                        total = r.headers.get("content-range", "").rpartition("/")[2]
                        if total.isdigit() and int(total) <= pos:
                            return  # a short read at the real end of the file
                    raise _Retryable(f"the body ended after {pos - start} of {length} bytes")
            except httpx2.TooManyRedirects:
                # A redirect loop is the server's configuration: another try ends the same way.
                raise SourceError(
                    f"reading {url}: the server redirects in a loop (too many redirects); "
                    "it is misconfigured, and retrying will not help"
                ) from None
            except (_Retryable, httpx2.TransportError) as e:
                try:
                    tries.failed(e, on_retry=note)
                except retry.GaveUp as g:
                    raise SourceError(
                        redact(f"reading {url} (bytes {start}..{end}): {reason(e)} (gave up after {g.attempts} "
                               f"attempts){GAVE_UP_HINT}")
                    ) from None


class _FsspecTransport(_Transport):
    """A local directory or any fsspec URL."""

    def __init__(self, url: str, storage_options: dict | None, retries: int, backoff: float, timeout: float):
        import fsspec

        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ImportError, ValueError) as e:
            raise SourceError(f"cannot open source {url!r}: {e}") from None
        self.root = self.root.rstrip("/") or "/"
        self.url = url.rstrip("/") if "://" in url else str(Path(self.root))
        try:
            ok = self.fs.isdir(self.root)
        except Exception as e:
            raise SourceError(redact(f"cannot open source {self.url}: {type(e).__name__}: {e}")) from None
        if not ok:
            raise NotFoundError(f"source {self.url} does not exist or is not a directory")

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel.strip('/')}" if rel.strip("/") else self.root

    def _call(self, fn: Callable[[], T], rel: str, what: str) -> T:
        def attempt() -> T:
            try:
                return fn()
            except FileNotFoundError:
                raise NotFoundError(f"{self.display(rel)} not found") from None
            except PermissionError as e:
                raise AuthError(f"{what} {self.display(rel)}: permission denied ({e})") from None
            except (OSError, TimeoutError) as e:
                if e.errno is not None and e.errno not in _TRANSIENT_ERRNOS:
                    # A local, permanent error (a folder where a file should be, a name too
                    # long, a read-only file system...): another try ends the same way.
                    raise SourceError(f"{what} {self.display(rel)}: {type(e).__name__}: {e.strerror}") from None
                raise _Retryable(f"{type(e).__name__}: {e}") from None

        return _with_retries(attempt, f"{what} {self.display(rel)}", self.retries, self.backoff)

    def ls(self, rel: str) -> list[dict]:
        entries = self._call(lambda: self.fs.ls(self._path(rel), detail=True), rel, "listing")
        out = []
        for e in entries:
            etag = e.get("ETag") or e.get("etag") or e.get("mtime") or e.get("LastModified") or ""
            out.append(
                {
                    "name": str(e["name"]).rstrip("/").rsplit("/", 1)[-1],
                    "type": "directory" if e.get("type") == "directory" else "file",
                    "size": int(e.get("size") or 0),
                    "etag": str(etag),
                }
            )
        return out

    def read(self, rel: str, start: int, length: int) -> bytes:
        path = self._path(rel)
        return self._call(lambda: self.fs.cat_file(path, start=start, end=start + length), rel, "reading")

    def stream(self, rel: str, start: int, length: int) -> Iterator[bytes]:
        pos, end = start, start + length
        while pos < end:
            chunk = self.read(rel, pos, min(CHUNK, end - pos))
            if not chunk:
                raise TarError(f"{self.display(rel)}: file ends at byte {pos}, expected {end} bytes (truncated?)")
            pos += len(chunk)
            yield chunk


# ---------------------------------------------------------------------------- helpers


def _factory_dir(factory: str | int) -> str:
    if isinstance(factory, int):
        return f"factory_{factory:03d}"
    m = _FACTORY_RE.fullmatch(str(factory))
    if not m:
        raise InvalidInputError(f"invalid factory {factory!r}: expected factory_XXX, e.g. factory_001")
    return f"factory_{m.group(1)}"


def _worker_dir(worker: str | int) -> str:
    if isinstance(worker, int):
        return f"worker_{worker:03d}"
    m = _WORKER_RE.fullmatch(str(worker))
    if not m:
        raise InvalidInputError(f"invalid worker {worker!r}: expected worker_XXX, e.g. worker_001")
    return f"worker_{m.group(1)}"


def _hint(names: list[str], limit: int = 12) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _digits(value: Any) -> int | None:
    """The number at the end of a sidecar id field (1, "001", "factory_001"); ASCII digits only."""
    ok = isinstance(value, (int, str)) and not isinstance(value, bool)
    m = re.fullmatch(r"[A-Za-z_]*([0-9]+)", str(value)) if ok else None
    return int(m.group(1)) if m else None


def _parse_sidecar(raw: bytes, clip: ClipId, video: TarMember, label: str) -> dict:
    """Parse and check a sidecar against its clip id and its video's tar header."""
    side = jsonin.loads(raw, f"{label}: sidecar {clip.key}.json", TarError)
    if not isinstance(side, dict):
        raise TarError(f"{label}: sidecar {clip.key}.json is not a JSON object")
    size = side.get("size_bytes")
    if not isinstance(size, int) or isinstance(size, bool):
        raise TarError(f"{label}: sidecar {clip.key}.json has no integer size_bytes (got {size!r})")
    if size != video.size:
        raise TarError(
            f"{label}: clip {clip.key}: sidecar size_bytes={size} but the tar header of "
            f"{video.name} says {video.size} bytes"
        )
    for field_name, expected in (("factory_id", clip.factory), ("worker_id", clip.worker), ("video_index", clip.index)):
        if field_name in side and _digits(side[field_name]) != expected:
            raise TarError(
                f"{label}: sidecar {clip.key}.json has {field_name}={side[field_name]!r}, "
                f"which does not match the clip id {clip.key}"
            )
    return side


def default_cache_dir() -> Path:
    """Where shard indexes are cached: $EGOCLEAN_CACHE/index, else ~/.cache/egoclean/index (egoclean.settings)."""
    from egoclean.settings import current  # at use: egoclean.settings opens sources through this module

    return Path(current().index_cache)


# ---------------------------------------------------------------------------- Source


class Source:
    """An Egocentric-10K dataset location: list it, index its shards, fetch clips."""

    def __init__(
        self,
        transport: _Transport,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        readahead: int = DEFAULT_READAHEAD,
        parallel: int = DEFAULT_PARALLEL,
    ):
        self._t = transport
        self.revision = revision
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.readahead = readahead
        self.parallel = max(1, int(parallel))
        self._indexes: dict[str, ShardIndex] = {}

    @property
    def url(self) -> str:
        return self._t.url

    def __repr__(self) -> str:
        return f"Source({self.url!r}, revision={self.revision!r})"

    # -- listing
    def _dirs(self, rel: str) -> list[str]:
        return sorted(e["name"] for e in self._t.ls(rel) if e["type"] == "directory")

    def list_factories(self) -> list[str]:
        """Factory folders, sorted: ["factory_001", ...]."""
        return [d for d in self._dirs("") if _FACTORY_RE.fullmatch(d) and d.startswith("factory_")]

    def list_workers(self, factory: str | int) -> list[str]:
        """A factory's worker folders, sorted: ["worker_001", ...]."""
        fdir = _factory_dir(factory)
        try:
            names = self._dirs(f"{fdir}/workers")
        except NotFoundError:
            raise NotFoundError(
                f"factory {fdir} not found in {self.url} (factories: {_hint(self.list_factories())})"
            ) from None
        return [d for d in names if _WORKER_RE.fullmatch(d) and d.startswith("worker_")]

    def list_shards(self, factory: str | int, worker: str | int) -> list[ShardRef]:
        """A worker's tar shards in part order."""
        fdir, wdir = _factory_dir(factory), _worker_dir(worker)
        rel = f"{fdir}/workers/{wdir}"
        try:
            entries = self._t.ls(rel)
        except NotFoundError:
            workers = self.list_workers(fdir)  # raises for an unknown factory
            raise NotFoundError(
                f"worker {wdir} not found in {fdir} of {self.url} (workers: {_hint(workers)})"
            ) from None
        prefix = f"factory{fdir[-3:]}_worker{wdir[-3:]}"
        shards = []
        for e in entries:
            m = _SHARD_RE.fullmatch(e["name"])
            if e["type"] == "file" and m and m.group(1) == prefix:
                ref = ShardRef(f"{rel}/{e['name']}", e["name"], e["size"], e["etag"])
                shards.append((int(m.group(2)), e["name"], ref))
        # Sorted by part number, then name: `_part0.tar` beside `_part00.tar` is the same
        # number (ShardRef itself has no order).
        return [s for _, _, s in sorted(shards, key=lambda t: t[:2])]

    def _index_all(self, shards: list[ShardRef], parallel: bool = True) -> list[ShardIndex | TarError]:
        """Each shard's index, or the TarError that says why it is damaged (other errors raise).

        In order, one at a time unless `parallel` (then `self.parallel` at once)."""

        def one(shard: ShardRef) -> ShardIndex | TarError:
            try:
                return self.index_shard(shard)
            except TarError as e:  # damaged: truncated, not a tar, unsafe names...
                return e

        if parallel and self.parallel > 1 and len(shards) > 1:
            with ThreadPoolExecutor(min(self.parallel, len(shards)), thread_name_prefix="egoclean-index") as pool:
                return list(pool.map(one, shards))
        return [one(s) for s in shards]

    def list_clips(
        self, factory: str | int, worker: str | int, damaged: list[tuple[ShardRef, TarError]] | None = None
    ) -> list[ClipId]:
        """A worker's clips, from its shard indexes (sorted, each once).

        A damaged shard raises its TarError, unless `damaged` is given: then it is appended
        there and the clips of the readable shards are returned. Members named for another
        worker are left out (logged): such a clip could never be fetched from here."""
        fdir, wdir = _factory_dir(factory), _worker_dir(worker)
        shards = self.list_shards(fdir, wdir)
        clips: set[ClipId] = set()
        for shard, idx in zip(shards, self._index_all(shards)):
            if isinstance(idx, TarError):
                if damaged is None:
                    raise idx
                damaged.append((shard, idx))
                continue
            for c in idx.clip_ids():
                if (c.factory, c.worker) == (int(fdir[-3:]), int(wdir[-3:])):
                    clips.add(c)
                else:
                    log.warning("%s: member %s belongs to another worker; it is not a clip of %s/%s",
                                self._t.display(shard.path), c.key, fdir, wdir)
        return sorted(clips)

    def read_intrinsics(self, factory: str | int, worker: str | int) -> dict:
        """The worker's intrinsics.json, parsed."""
        rel = f"{_factory_dir(factory)}/workers/{_worker_dir(worker)}/intrinsics.json"
        return self._intrinsics(rel)[0]

    def _intrinsics(self, rel: str) -> tuple[dict, bytes]:
        entries = {e["name"]: e for e in self._t.ls(rel.rsplit("/", 1)[0])}
        entry = entries.get("intrinsics.json")
        if entry is None:
            raise NotFoundError(f"{self._t.display(rel)} not found")
        if entry["size"] > MAX_JSON_BYTES:
            raise IntrinsicsError(
                f"{self._t.display(rel)} is {entry['size']} bytes, too large for intrinsics (> 1 MiB)"
            )
        raw = b"".join(self._t.stream(rel, 0, entry["size"])) if entry["size"] else b""
        # NaN/Infinity pass the parser here: FisheyeIntrinsics names the field they are in.
        obj = jsonin.loads(raw, self._t.display(rel), IntrinsicsError, finite=False)
        if not isinstance(obj, dict):
            raise IntrinsicsError(f"{self._t.display(rel)} is not a JSON object")
        return obj, raw

    # -- indexing
    def _cache_key(self, shard: ShardRef) -> list:
        return [self.url, self.revision or "", shard.path, shard.size, shard.etag]

    def _cache_file(self, shard: ShardRef) -> Path:
        digest = hashlib.sha256(json.dumps(self._cache_key(shard)).encode()).hexdigest()[:32]
        return self.cache_dir / f"{digest}.json"

    def _load_cached(self, shard: ShardRef) -> ShardIndex | None:
        path = self._cache_file(shard)
        try:
            data = jsonin.loads(path.read_bytes(), str(path), max_bytes=MAX_INDEX_BYTES)
            if data.get("version") != INDEX_VERSION or data.get("key") != self._cache_key(shard):
                return None
            members = [TarMember.from_dict(m) for m in data["members"]]
            for m in members:  # a tampered cache must not smuggle in a path
                check_member_name(m.name, str(path), m.header_offset)
                if m.offset < 0 or m.size < 0 or m.offset + m.size > shard.size:
                    return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, TarError):
            return None  # a damaged or foreign cache file is ignored: the shard is indexed again
        return ShardIndex(shard, members, from_cache=True)

    def index_shard(self, shard: ShardRef) -> ShardIndex:
        """Index a shard from its tar headers (ranged reads), or from the cache."""
        if shard.path in self._indexes and self._indexes[shard.path].shard == shard:
            return self._indexes[shard.path]
        idx = self._load_cached(shard)
        if idx is None:
            label = self._t.display(shard.path)
            scan = scan_headers(
                lambda off, n: self._t.read(shard.path, off, n), shard.size, label, self.readahead
            )
            idx = ShardIndex(shard, scan.members, reads=scan.reads, bytes_read=scan.bytes_read)
            try:
                write_json(
                    self._cache_file(shard),
                    {"version": INDEX_VERSION, "key": self._cache_key(shard), **idx.to_dict()},
                )
            except OSError as e:
                log.warning("could not cache the index of %s in %s: %s", shard.name, self.cache_dir, e)
        self._indexes[shard.path] = idx
        return idx

    def locate_clip(self, clip_id: ClipId | str) -> tuple[tuple[ShardRef, TarMember], tuple[ShardRef, TarMember]]:
        """Find a clip's video and sidecar members in its worker's shards."""
        clip = clip_id if isinstance(clip_id, ClipId) else ClipId.parse(clip_id)
        shards = self.list_shards(clip.factory, clip.worker)
        if not shards:
            raise NotFoundError(f"clip {clip.key} not found: {self._t.display(clip.worker_path)} has no shards")
        # Every shard is indexed (headers only, cached): a member in two shards is two
        # candidate clips, and taking the first silently could be the wrong one.
        indexes = self._index_all(shards, parallel=False)  # a failing source fails on the first shard
        self._check_not_in_damaged(clip, shards, indexes)
        hits: dict[str, list[tuple[ShardRef, TarMember]]] = {"mp4": [], "json": []}
        for shard, idx in zip(shards, indexes):
            if isinstance(idx, TarError):
                continue  # the clip cannot be in it (else _check_not_in_damaged raised)
            for ext in ("mp4", "json"):
                m = idx.member(f"{clip.key}.{ext}")
                if m is not None:
                    hits[ext].append((shard, m))
        for ext, where in hits.items():
            if len(where) > 1:
                raise TarError(
                    f"clip {clip.key}: {clip.key}.{ext} is in {len(where)} shards "
                    f"({', '.join(s.name for s, _ in where)}) of {self._t.display(clip.worker_path)}; "
                    "which one is the clip is ambiguous: remove the duplicate"
                )
        found = {ext: where[0] for ext, where in hits.items() if where}
        names = ", ".join(s.name for s in shards)
        if not found:
            raise NotFoundError(f"clip {clip.key} not found in shards {names} of {self._t.display(clip.worker_path)}")
        if "json" not in found:
            raise TarError(
                f"{found['mp4'][0].name}: clip {clip.key} has a video but no {clip.key}.json sidecar in shards {names}"
            )
        if "mp4" not in found:
            raise TarError(
                f"{found['json'][0].name}: clip {clip.key} has a sidecar but no {clip.key}.mp4 video in shards {names}"
            )
        return found["mp4"], found["json"]

    def _check_not_in_damaged(self, clip: ClipId, shards: list[ShardRef], indexes: list) -> None:
        """Raise a damaged shard's TarError if `clip` could be in it.

        A worker's clips continue across its shards in part order (SPEC), so a damaged
        shard can hold only clips numbered between the last clip of the readable shards
        before it and the first clip of those after it; every other clip is fetched from
        the readable shards, with the duplicate check over all of them."""
        numbers = [
            [c.index for c in idx.clip_ids()] if not isinstance(idx, TarError) else None for idx in indexes
        ]
        for i, idx in enumerate(indexes):
            if not isinstance(idx, TarError):
                continue
            before = [n for ns in numbers[:i] if ns for n in ns]
            after = [n for ns in numbers[i + 1:] if ns for n in ns]
            low, high = max(before, default=-1), min(after, default=float("inf"))
            if low < clip.index < high:
                raise TarError(
                    f"clip {clip.key} could be in the damaged shard {shards[i].name} "
                    f"(between clips {low} and {high if high != float('inf') else 'the end'}): {idx}"
                )

    # -- fetching
    def fetch_clip(self, clip_id: ClipId | str, out_dir: str | os.PathLike, progress: bool = True) -> FetchedClip:
        """Fetch a clip's MP4 and sidecar into `out_dir` (streamed, size-checked, atomic).

        Writes `<clip>.mp4` and `<clip>.json`; on any failure neither is left behind
        (and a file already there is untouched)."""
        from tqdm.auto import tqdm

        clip = clip_id if isinstance(clip_id, ClipId) else ClipId.parse(clip_id)
        (vshard, video), (sshard, sidecar_m) = self.locate_clip(clip)
        label = self._t.display(vshard.path)
        if sidecar_m.size > MAX_JSON_BYTES:
            raise TarError(f"{label}: sidecar {sidecar_m.name} is {sidecar_m.size} bytes, not a sidecar (> 1 MiB)")
        raw = b"".join(self._t.stream(sshard.path, sidecar_m.offset, sidecar_m.size))
        sidecar = _parse_sidecar(raw, clip, video, label)

        out_dir = Path(out_dir)
        mp4_path, json_path = out_dir / f"{clip.key}.mp4", out_dir / f"{clip.key}.json"
        # Both files are written to temporary names and renamed only once the video is
        # complete and checked, so a failure leaves neither.
        with atomic_path(json_path) as tmp_json, atomic_path(mp4_path) as tmp_mp4:
            written = 0
            with open(tmp_mp4, "wb") as f, tqdm(
                total=video.size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=clip.key,
                disable=not progress,
                mininterval=0.5,
            ) as bar:
                for chunk in self._t.stream(vshard.path, video.offset, video.size):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            on_disk = tmp_mp4.stat().st_size
            if written != video.size or on_disk != sidecar["size_bytes"]:
                raise SourceError(
                    f"{label}: clip {clip.key}: wrote {on_disk} bytes, expected {video.size} (tar header) "
                    f"and {sidecar['size_bytes']} (sidecar)"
                )
            tmp_json.write_bytes(raw)
        return FetchedClip(clip, mp4_path, sidecar, json_path, video.size, vshard.name)

    def fetch_intrinsics(self, clip_id: ClipId | str, out_path: str | os.PathLike) -> Path:
        """Write the clip's worker's intrinsics.json to `out_path` (atomically, as served)."""
        clip = clip_id if isinstance(clip_id, ClipId) else ClipId.parse(clip_id)
        _, raw = self._intrinsics(f"{clip.worker_path}/intrinsics.json")
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(raw)
        return Path(out_path)


# ---------------------------------------------------------------------------- open


def _parse_hf_url(url: str, revision: str | None) -> tuple[str, str, str | None]:
    rest = url[len("hf://") :]
    parts = rest.split("/")
    if len(parts) < 3 or parts[0] != "datasets" or not parts[1] or not parts[2]:
        raise InvalidInputError(
            f"invalid source URL {url!r}: expected hf://datasets/<owner>/<name>[@revision][/folder]"
        )
    owner, name, prefix = parts[1], parts[2], "/".join(parts[3:])
    if "@" in name:
        name, _, rev_in_url = name.partition("@")
        if revision is not None and revision != rev_in_url:
            raise InvalidInputError(
                f"source URL {url!r} pins revision {rev_in_url!r} but revision={revision!r} was also given"
            )
        revision = rev_in_url or revision
    return f"{owner}/{name}", prefix, revision


def open_source(
    url: str = defaults.DATASET_URL,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    retries: int = defaults.SOURCE_RETRIES,
    timeout: float = defaults.SOURCE_TIMEOUT_SEC,
    backoff: float = defaults.SOURCE_BACKOFF_SEC,
    endpoint: str | None = None,
    storage_options: dict | None = None,
    readahead: int = DEFAULT_READAHEAD,
    parallel: int = DEFAULT_PARALLEL,
) -> Source:
    """Open a dataset location: `hf://datasets/...`, a local directory, or an fsspec URL.

    hf://: `token` defaults to egoclean.core.secrets.hf_token() (HF_TOKEN or .env), then to
    huggingface_hub's saved login (False: no token); `endpoint` defaults to HF_ENDPOINT / huggingface.co;
    `revision` pins a branch, tag or commit. `retries` (after the first try) and
    `backoff` (the first wait, doubling up to defaults.SOURCE_BACKOFF_CAP_SEC, jittered as in
    egoclean.core.retry) apply to every read; `timeout` (s) to each request. `cache_dir`
    holds shard indexes (default: see default_cache_dir); `parallel` shards are indexed at
    once by list_clips."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError(f"invalid source URL {url!r}: expected hf://..., a directory or an fsspec URL")
    if retries < 0 or timeout <= 0 or backoff < 0:
        raise InvalidInputError(
            f"invalid retry settings: retries={retries} (>= 0), timeout={timeout} (> 0), backoff={backoff} (>= 0)"
        )
    url = url.strip()
    if url.startswith("hf://"):
        repo_id, prefix, revision = _parse_hf_url(url, revision)
        # token=False (or "") sends no token at all, not even huggingface_hub's saved login.
        tok = hf_token() if token is None else (token or False)
        transport: _Transport = _HfTransport(repo_id, prefix, revision, tok, endpoint, retries, backoff, timeout)
    else:
        if revision is not None:
            raise InvalidInputError(f"revision={revision!r} applies only to hf:// sources, not {url!r}")
        transport = _FsspecTransport(url, storage_options, retries, backoff, timeout)
    return Source(transport, revision=revision, cache_dir=cache_dir, readahead=readahead, parallel=parallel)
