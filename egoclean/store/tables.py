"""The DuckDB segment store: clips, segments, window scores, ground truth, detection_eval.

DuckDB lets one process at a time open a database file for writing, and a second
process that tries fails at once with a lock error. So every call opens a short-lived
connection, does its work in one transaction, and closes it; opening retries with
exponential backoff and jitter on the lock error for a bounded number of attempts and
seconds, then raises `StoreBusyError` naming the file.

Re-materializing a clip replaces its rows (DELETE then INSERT in one transaction over
`clips`, `segments` and `window_scores`), so a reader sees either the old clip or the
new one, never half of one and never duplicates.

`ground_truth` holds the spans in effect (egoclean.temporal.ground_truth.GroundTruth: precedence,
one source per file, duplicates collapsed), loaded whole by `sync_ground_truth` only when
the configuration or its files changed. `detection_matches` holds the verdict of
`egoclean.temporal.ground_truth.judge` per clip (the same function the asset check and
`egoclean detect` use), rewritten in the transaction that changes the clip's segments or
the ground truth, so it can never disagree with them.

`detection_eval` (a view over it) has one row per outcome: each ground-truth span with
the detection matched to it one-to-one at IoU >= 0.5 ('matched'), else its best-overlap
detection ('missed'; the detection columns are NULL when nothing overlaps); each
detection on a clip with ground truth that matches no span ('false positive', with its
best IoU); and, for a clip whose duration is not the one its labels were made on, each
span as 'not judged'. Clips without ground truth are not listed. Times are seconds;
`truth` / `detected` show them as mm:ss.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import duckdb

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError, StoreBusyError
from egoclean.core.ids import ClipId

DEFAULT_RETRIES = 60
DEFAULT_TIMEOUT_SEC = 30.0
# Settings of a connection that runs SQL typed by a user (`egoclean sql`): nothing
# outside the database file, no extension downloaded or auto-loaded, and no SET can
# undo it (lock_configuration). `allow_files` turns external access back on.
SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}
# Backoff between lock retries: first wait up to BASE, doubling up to CAP.
BACKOFF_BASE_SEC = 0.05
BACKOFF_CAP_SEC = 1.0

T = TypeVar("T")
log = logging.getLogger(__name__)


class QueryError(InvalidInputError):
    """A SQL query failed (DuckDB's message) or tried to write through a read-only query."""


class StoreMissingError(InvalidInputError):
    """The database file does not exist yet (nothing has been materialized)."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    clip_id VARCHAR {pk},
    factory VARCHAR NOT NULL,            -- dataset folder name: factory_001
    worker VARCHAR NOT NULL,             -- dataset folder name: worker_001
    n_frames BIGINT,
    fps DOUBLE,
    width INTEGER,
    height INTEGER,
    duration_sec DOUBLE,
    paths MAP(VARCHAR, VARCHAR),         -- paths['rectified'], paths['embeddings'], ...
    model VARCHAR,
    random_weights BOOLEAN,
    materialized_at TIMESTAMP            -- UTC
);
CREATE TABLE IF NOT EXISTS segments (
    clip_id VARCHAR NOT NULL,
    factory VARCHAR NOT NULL,
    worker VARCHAR NOT NULL,
    kind VARCHAR NOT NULL {kind_check},
    start_sec DOUBLE NOT NULL,
    end_sec DOUBLE NOT NULL,
    duration_sec DOUBLE NOT NULL,
    peak_score DOUBLE,
    theta_on DOUBLE,
    theta_off DOUBLE,
    model VARCHAR,
    materialized_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS window_scores (
    clip_id VARCHAR NOT NULL,
    t_sec DOUBLE NOT NULL,
    score DOUBLE,
    smoothed DOUBLE,
    is_anomaly BOOLEAN
);
CREATE TABLE IF NOT EXISTS ground_truth (
    clip_id VARCHAR NOT NULL,
    clip_duration_sec DOUBLE,
    start_sec DOUBLE NOT NULL,
    end_sec DOUBLE NOT NULL,
    label VARCHAR,
    source VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ground_truth_state (
    fingerprint VARCHAR,                 -- egoclean.temporal.ground_truth.fingerprint of what is loaded
    loaded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS detection_matches (
    clip_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,             -- matched, missed, false positive, not judged
    label VARCHAR,
    source VARCHAR,
    gt_start_sec DOUBLE,
    gt_end_sec DOUBLE,
    det_start_sec DOUBLE,
    det_end_sec DOUBLE,
    iou DOUBLE,
    matched BOOLEAN NOT NULL
);
CREATE OR REPLACE MACRO egoclean_mmss(x) AS
    CASE WHEN x IS NULL THEN NULL ELSE
        printf('%02d:%02d', (round(greatest(x, 0))::BIGINT) // 60, (round(greatest(x, 0))::BIGINT) % 60)
    END;
CREATE OR REPLACE MACRO egoclean_iou(a0, a1, b0, b1) AS
    CASE WHEN (a1 - a0) + (b1 - b0) - greatest(0.0, least(a1, b1) - greatest(a0, b0)) > 0
         THEN greatest(0.0, least(a1, b1) - greatest(a0, b0))
              / ((a1 - a0) + (b1 - b0) - greatest(0.0, least(a1, b1) - greatest(a0, b0)))
         ELSE 0.0 END;
CREATE OR REPLACE VIEW detection_eval AS
SELECT m.clip_id, m.label, m.source, m.status,
       egoclean_mmss(m.gt_start_sec) || '-' || egoclean_mmss(m.gt_end_sec) AS truth,
       egoclean_mmss(m.det_start_sec) || '-' || egoclean_mmss(m.det_end_sec) AS detected,
       m.iou,
       m.det_start_sec - m.gt_start_sec AS start_error_sec,
       m.det_end_sec - m.gt_end_sec AS end_error_sec,
       m.matched, m.gt_start_sec, m.gt_end_sec, m.det_start_sec, m.det_end_sec,
       s.peak_score, s.model
FROM detection_matches m
LEFT JOIN segments s ON s.clip_id = m.clip_id AND s.kind = 'anomaly'
     AND s.start_sec = m.det_start_sec AND s.end_sec = m.det_end_sec
ORDER BY m.clip_id, coalesce(m.gt_start_sec, m.det_start_sec), m.gt_start_sec NULLS LAST;
"""


# DuckLake tables take no PRIMARY KEY or CHECK constraints: there, replace_clip's
# delete-then-insert under a per-clip lock is what keeps one row per clip.
EMBEDDED_SCHEMA = SCHEMA.format(pk="PRIMARY KEY", kind_check="CHECK (kind IN ('anomaly', 'work'))")
LAKE_SCHEMA = SCHEMA.format(pk="", kind_check="")
SCHEMA_TAG = "egoclean schema " + hashlib.sha256(SCHEMA.encode()).hexdigest()[:16]


def _has_schema(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the database already has this version of the schema.

    The version lives in the view's comment; skipping the DDL when it matches keeps
    writers from rewriting the catalog on every clip."""
    tag = con.execute(
        "SELECT comment FROM duckdb_views() WHERE view_name = 'detection_eval' AND NOT internal"
        " AND database_name = current_database()"
    ).fetchone()
    return bool(tag and tag[0] == SCHEMA_TAG)


def _ensure_schema(con: duckdb.DuckDBPyConnection, schema: str = EMBEDDED_SCHEMA) -> None:
    """Create or update the schema unless the database already has this version of it."""
    if _has_schema(con):
        return
    con.execute(schema)
    con.execute(f"COMMENT ON VIEW detection_eval IS '{SCHEMA_TAG}'")


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _process_write_lock(path: Path) -> threading.Lock:
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


# The shared store's kept read-write connections, one per (process, lake), and the lock
# that gives a connection to one thread's transaction at a time.
_LAKE_WRITERS: dict[tuple, duckdb.DuckDBPyConnection] = {}


def _lake_write_lock(key: tuple) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(repr(key), threading.Lock())


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_lock_error(e: BaseException) -> bool:
    """True for the errors that clear once another connection closes the file."""
    msg = str(e)
    if isinstance(e, duckdb.IOException) and "lock" in msg.lower():
        return True
    # Same process, other configuration (read-only vs read-write, sandboxed) still open,
    # or a thread's connection to the file closing while another opens it with another
    # configuration (DuckDB then says the file "is already attached").
    if isinstance(e, duckdb.ConnectionException) and "different configuration" in msg:
        return True
    return isinstance(e, duckdb.BinderException) and "already attached" in msg


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(msg: str) -> str:
    """Who holds the file, from DuckDB's lock error: 'process 123 (python3 -m ...)', or 'another process'."""
    m = _LOCK_HOLDER.search(msg)
    if not m:
        return "another process"
    pid, what = int(m["pid"]), m["exe"]
    try:  # the command line says more than the executable (e.g. which script or notebook)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # one line: arguments such as `python -c "<script>"` may hold newlines
            cmd = " ".join(" ".join(a.decode(errors="replace") for a in f.read().split(b"\0") if a).split())
        what = cmd[:160] + ("…" if len(cmd) > 160 else "") if cmd else what
    except OSError:
        pass
    return f"process {pid} ({what})"


def _one_line(msg: str) -> str:
    """DuckDB's message up to its 'LINE n:' caret excerpt, on one line."""
    kept = []
    for line in str(msg).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept) or str(msg).strip()


def _short(sql: str, limit: int = 200) -> str:
    s = " ".join(sql.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _truth_row(sp: Any, source: str) -> tuple:
    key = ClipId.parse(str(sp.clip_id)).key
    ((start, end, _),) = _span_rows([sp], f"ground truth {source} {key}")
    return (key, _float(getattr(sp, "clip_duration_sec", None)), start, end, getattr(sp, "label", None), str(source))


def _span_rows(spans: Iterable[Any], what: str) -> list[tuple[float, float, float | None]]:
    rows = []
    for s in spans:
        start, end = float(s.start_sec), float(s.end_sec)
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise InvalidInputError(f"{what}: span {start}..{end} s is not a finite, ordered interval")
        rows.append((start, end, _float(getattr(s, "peak_score", None))))
    return rows


def _rejudge(con: duckdb.DuckDBPyConnection, clip_ids: Iterable[str] | None = None) -> int:
    """Rewrite detection_matches for these clips (None: every clip) from the clip's anomaly
    segments, its duration and the ground truth in the table; returns the rows written."""
    from egoclean.temporal.evaluation import GroundTruthSpan
    from egoclean.temporal.ground_truth import judge

    if clip_ids is None:
        con.execute("DELETE FROM detection_matches")
        clip_ids = [r[0] for r in con.execute("SELECT DISTINCT clip_id FROM ground_truth").fetchall()]
    else:
        clip_ids = sorted(set(clip_ids))
        for c in clip_ids:
            con.execute("DELETE FROM detection_matches WHERE clip_id = ?", [c])
    rows = []
    for c in clip_ids:
        truth = con.execute("SELECT clip_id, clip_duration_sec, start_sec, end_sec, label, source FROM ground_truth "
                            "WHERE clip_id = ? ORDER BY start_sec, end_sec", [c]).fetchall()
        if not truth:
            continue
        spans = [GroundTruthSpan(r[0], r[1], r[2], r[3], r[4] or "") for r in truth]
        dur = con.execute("SELECT duration_sec FROM clips WHERE clip_id = ?", [c]).fetchone()
        dets = con.execute("SELECT start_sec, end_sec FROM segments WHERE clip_id = ? AND kind = 'anomaly' "
                           "ORDER BY start_sec", [c]).fetchall()
        verdict = judge(c, dets, spans, None if dur is None else dur[0])
        rows += [tuple(r.values()) for r in verdict.match_rows(truth[-1][5])]
    if rows:
        con.executemany("INSERT INTO detection_matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


@dataclass
class Store:
    """The segment tables at `path`: a local DuckDB file (default) or a shared DuckLake.

    `path` is a file path, or a table-store URL `ducklake:postgres:<libpq keywords>`
    (egoclean.store.ducklake) that many machines write at once; `data_path` is where a new
    lake keeps its Parquet files (`s3://bucket/tables/` or a shared folder). Both are
    opened briefly per call, with a bounded retry while the file is locked (embedded)
    or another writer holds the same clip (shared)."""

    path: Path | str = Path(defaults.DB_PATH)
    retries: int = DEFAULT_RETRIES  # connection attempts in all (>= 1)
    timeout_sec: float = DEFAULT_TIMEOUT_SEC  # give up retrying after this long
    data_path: str | None = None  # shared store only: where a new lake writes Parquet

    def __post_init__(self) -> None:
        from egoclean.store import ducklake

        self.is_shared = ducklake.is_lake_url(self.path)
        self.path = str(self.path) if self.is_shared else Path(self.path)
        self.retries = max(1, int(self.retries))
        self.timeout_sec = float(self.timeout_sec)
        self._lake_schema_ok = False

    @property
    def location(self) -> str:
        """Where the tables are, for messages and metadata (a password in a URL hidden)."""
        from egoclean.store.ducklake import redact_url

        return redact_url(str(self.path)) if self.is_shared else str(self.path)

    # -- connections ---------------------------------------------------------------

    def _connect(self, read_only: bool, config: dict | None = None) -> duckdb.DuckDBPyConnection:
        """Open the database, retrying with backoff + jitter while another process holds it.

        `config`: DuckDB settings fixed at connection (see SANDBOX); the shared store
        applies those it can after attaching."""
        if self.is_shared:
            con = self._connect_lake(read_only)
            for k, v in (config or {}).items():
                if k != "enable_external_access":  # the lake itself reads its catalog and Parquet files
                    con.execute(f"SET {k} = {'true' if v else 'false'}")
            return con
        if read_only and not self.path.is_file():
            raise StoreMissingError(
                f"database {self.path} does not exist: materialize a clip first "
                "(e.g. anomaly_segments in `dagster dev`) or pass --db PATH"
            )
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return duckdb.connect(str(self.path), read_only=read_only, config=dict(config or {}))
            except duckdb.Error as e:
                if not _is_lock_error(e):
                    raise InvalidInputError(f"database {self.path}: cannot open: {_one_line(str(e))}") from None
                elapsed = time.monotonic() - start
                if attempt >= self.retries or elapsed >= self.timeout_sec:
                    raise StoreBusyError(
                        f"database {self.path} is busy: {lock_holder(str(e))} holds its lock "
                        f"(gave up after {attempt} attempts in {elapsed:.1f} s); "
                        "close the DuckDB session in that process (a duckdb shell, notebook or script "
                        "with the file open) or wait for it to finish, then try again"
                    ) from None
                # Jitter keeps several waiting writers from retrying in lockstep.
                cap = min(BACKOFF_CAP_SEC, BACKOFF_BASE_SEC * 2 ** (attempt - 1))
                delay = min(random.uniform(cap / 4, cap), max(0.0, self.timeout_sec - elapsed))
                log.info("database %s is busy (attempt %d); retrying in %.2f s", self.path, attempt, delay)
                time.sleep(delay)

    def _connect_lake(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        from egoclean.store import ducklake

        try:
            return ducklake.connect(str(self.path), self.data_path, read_only=read_only)
        except duckdb.Error as e:
            raise InvalidInputError(
                f"table store {self.location}: cannot attach: {ducklake.redact_url(_one_line(str(e)))}") from None

    def _write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], locks: Sequence[str] = ()) -> T:
        """Run `fn` in one transaction on a fresh read-write connection (schema ensured).

        `locks` name what the transaction replaces (a clip, a ground-truth source): in
        the shared store writers of the same name take turns."""
        if self.is_shared:
            self._ensure_lake_schema()
            with self._key_lock(list(locks)), _lake_write_lock(self._lake_key()):
                return self._retry_conflicts(lambda: self._write_unlocked(fn, ensure=False))
        # Threads of one process share DuckDB's instance for a file, where concurrent
        # transactions can conflict (schema creation, same rows): writers queue here.
        with _process_write_lock(self.path):
            return self._write_unlocked(fn)

    def _retry_conflicts(self, attempt_fn: Callable[[], T]) -> T:
        """Re-run a shared-store transaction that DuckLake refused for a conflicting commit.

        DuckLake refuses a commit that deletes from a table another writer inserted into
        since this transaction began (different clips included); the whole transaction
        (fresh snapshot) is re-run with backoff + jitter, bounded like the lock retry."""
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return attempt_fn()
            except duckdb.TransactionException as e:
                if "conflict" not in str(e).lower():
                    raise
                elapsed = time.monotonic() - start
                if attempt >= self.retries or elapsed >= self.timeout_sec:
                    raise StoreBusyError(
                        f"table store {self.location} is busy: commits kept conflicting with other writers "
                        f"(gave up after {attempt} attempts in {elapsed:.1f} s): {_one_line(str(e))}"
                    ) from None
                cap = min(BACKOFF_CAP_SEC, BACKOFF_BASE_SEC * 2 ** (attempt - 1))
                delay = min(random.uniform(cap / 4, cap), max(0.0, self.timeout_sec - elapsed))
                log.info("table store %s: commit conflict (attempt %d); retrying in %.2f s",
                         self.location, attempt, delay)
                time.sleep(delay)

    @contextlib.contextmanager
    def _key_lock(self, names: list[str]):
        from egoclean.store import ducklake

        if not names:
            yield
            return
        try:
            lock = ducklake.key_lock(str(self.path), names, self.timeout_sec)
            lock.__enter__()
        except TimeoutError as e:
            raise StoreBusyError(f"table store {self.location} is busy: {e}") from None
        except Exception as e:  # psycopg2.Error: the catalog database is unreachable
            raise InvalidInputError(f"table store {self.location}: cannot lock {', '.join(names)}: "
                                    f"{ducklake.redact_url(_one_line(str(e)))}") from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    def _ensure_lake_schema(self) -> None:
        """Create the shared schema once, one writer at a time (DDL conflicts otherwise)."""
        if self._lake_schema_ok:
            return
        con = self._connect(read_only=False)
        try:
            ok = _has_schema(con)
        finally:
            con.close()
        if not ok:
            with self._key_lock(["schema"]):
                self._write_unlocked(lambda con: None, ensure=True)
        self._lake_schema_ok = True

    def _lake_key(self) -> tuple:
        return (os.getpid(), str(self.path), self.data_path)

    def _lake_writer(self) -> duckdb.DuckDBPyConnection:
        """This process's read-write connection to the lake (attaching costs ~0.5 s: kept).

        Callers hold `_lake_write_lock`; each use is one transaction, which starts from the
        lake's newest snapshot, so a kept connection sees other machines' commits."""
        key = self._lake_key()
        con = _LAKE_WRITERS.get(key)
        if con is None:
            con = _LAKE_WRITERS[key] = self._connect(read_only=False)
        return con

    def _write_unlocked(self, fn: Callable[[duckdb.DuckDBPyConnection], T], ensure: bool = True) -> T:
        if self.is_shared and not ensure:
            con = self._lake_writer()
            try:
                return self._transaction(con, fn, ensure)
            except (duckdb.ConnectionException, duckdb.IOException, duckdb.FatalException):
                # the catalog connection broke (server restarted, network): reattach next time
                _LAKE_WRITERS.pop(self._lake_key(), None)
                with contextlib.suppress(duckdb.Error):
                    con.close()
                raise
        con = self._connect(read_only=False)
        try:
            return self._transaction(con, fn, ensure)
        finally:
            con.close()

    def _transaction(self, con: duckdb.DuckDBPyConnection, fn: Callable[[duckdb.DuckDBPyConnection], T],
                     ensure: bool) -> T:
        """Run `fn` in one transaction on `con` (schema ensured first when `ensure`)."""
        con.execute("BEGIN TRANSACTION")
        try:
            if ensure:
                _ensure_schema(con, LAKE_SCHEMA if self.is_shared else EMBEDDED_SCHEMA)
            result = fn(con)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        return result

    def _read(self, fn: Callable[[duckdb.DuckDBPyConnection], T], config: dict | None = None) -> T:
        con = self._connect(read_only=True, config=config)
        try:
            return fn(con)
        finally:
            con.close()

    # -- writing -------------------------------------------------------------------

    def init(self) -> Path:
        """Create the tables and the detection_eval view if missing (idempotent)."""
        if self.is_shared:
            self._ensure_lake_schema()
        else:
            self._write(lambda con: None)
        return self.path

    def replace_clip(
        self,
        clip: dict,
        detection: Any,
        model: str,
        *,
        random_weights: bool | None = None,
        materialized_at: datetime | None = None,
    ) -> dict:
        """Replace one clip's rows in clips, segments and window_scores in one transaction.

        `clip` needs `clip_id` and may hold n_frames, fps, width, height, duration_sec,
        paths (name -> path) and random_weights. `detection` is an
        `egoclean.temporal.detection.Detection` (ts, score, smoothed, is_anomaly, theta_on,
        theta_off, spans, work_spans). Returns the row counts written.
        """
        if not isinstance(clip, dict) or "clip_id" not in clip:
            raise InvalidInputError(f"replace_clip: clip must be a dict with a clip_id, got {clip!r:.200}")
        cid = ClipId.parse(str(clip["clip_id"]))
        key = cid.key
        ts = [float(x) for x in detection.ts]
        cols = {
            "score": [float(x) for x in detection.score],
            "smoothed": [float(x) for x in detection.smoothed],
            "is_anomaly": [bool(x) for x in detection.is_anomaly],
        }
        bad = {k: len(v) for k, v in cols.items() if len(v) != len(ts)}
        if bad:
            raise InvalidInputError(f"replace_clip {key}: window arrays disagree with ts ({len(ts)}): {bad}")
        anomaly = _span_rows(detection.spans, f"replace_clip {key} anomaly spans")
        work = _span_rows(getattr(detection, "work_spans", None) or [], f"replace_clip {key} work spans")
        theta_on, theta_off = _float(detection.theta_on), _float(detection.theta_off)
        when = materialized_at or _utcnow()
        rw = clip.get("random_weights") if random_weights is None else random_weights
        paths = {str(k): str(v) for k, v in (clip.get("paths") or {}).items() if v is not None}

        def opt(name: str, cast: Callable[[Any], Any]) -> Any:
            v = clip.get(name)
            return None if v is None else cast(v)

        clip_row = (
            key, cid.factory_dir, cid.worker_dir,
            opt("n_frames", int), opt("fps", float), opt("width", int), opt("height", int),
            opt("duration_sec", float), paths, str(model), None if rw is None else bool(rw), when,
        )
        seg_rows = [
            (key, cid.factory_dir, cid.worker_dir, kind, s, e, e - s, peak, theta_on, theta_off, str(model), when)
            for kind, spans in (("anomaly", anomaly), ("work", work))
            for s, e, peak in spans
        ]

        def write(con: duckdb.DuckDBPyConnection) -> dict:
            for table in ("clips", "segments", "window_scores"):
                con.execute(f"DELETE FROM {table} WHERE clip_id = ?", [key])
            con.execute(
                "INSERT INTO clips VALUES (?, ?, ?, ?, ?, ?, ?, ?, MAP(?::VARCHAR[], ?::VARCHAR[]), ?, ?, ?)",
                [*clip_row[:8], list(paths), list(paths.values()), *clip_row[9:]],
            )
            if seg_rows:
                con.executemany("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", seg_rows)
            if ts:
                # One statement with list parameters: unnest zips them into rows, far
                # faster than executemany over ~1,000 windows.
                con.execute(
                    "INSERT INTO window_scores SELECT ?, unnest(?::DOUBLE[]), unnest(?::DOUBLE[]),"
                    " unnest(?::DOUBLE[]), unnest(?::BOOLEAN[])",
                    [key, ts, cols["score"], cols["smoothed"], cols["is_anomaly"]],
                )
            _rejudge(con, [key])
            return {"clip_id": key, "segments": len(seg_rows), "anomaly_spans": len(anomaly),
                    "work_spans": len(work), "window_scores": len(ts)}

        return self._write(write, locks=[f"clip {key}"])

    def delete_clip(self, clip_id: str) -> None:
        """Remove one clip's rows from clips, segments and window_scores."""
        key = ClipId.parse(clip_id).key

        def write(con: duckdb.DuckDBPyConnection) -> None:
            for table in ("clips", "segments", "window_scores"):
                con.execute(f"DELETE FROM {table} WHERE clip_id = ?", [key])
            _rejudge(con, [key])

        self._write(write, locks=[f"clip {key}"])

    def replace_ground_truth(self, spans: Sequence[Any], source: str) -> int:
        """Replace every ground-truth row of `source` with `spans` (GroundTruthSpan-like).

        A low-level edit of one source; `sync_ground_truth` loads a whole configuration."""
        if not source:
            raise InvalidInputError("replace_ground_truth: source must be a non-empty name")
        rows = [_truth_row(sp, source) for sp in spans]

        def write(con: duckdb.DuckDBPyConnection) -> int:
            # Every anomaly_segments step writes the configured ground truth: when it is
            # unchanged nothing is rewritten (in the shared store that would be a new
            # snapshot, and a commit conflict, per clip).
            have = con.execute(
                "SELECT clip_id, clip_duration_sec, start_sec, end_sec, label, source FROM ground_truth"
                " WHERE source = ?", [str(source)]).fetchall()
            if sorted(have, key=repr) == sorted(rows, key=repr):
                return len(rows)
            before = [r[0] for r in con.execute("SELECT DISTINCT clip_id FROM ground_truth WHERE source = ?",
                                                [str(source)]).fetchall()]
            con.execute("DELETE FROM ground_truth WHERE source = ?", [str(source)])
            if rows:
                con.executemany("INSERT INTO ground_truth VALUES (?, ?, ?, ?, ?, ?)", rows)
            con.execute("DELETE FROM ground_truth_state")  # no longer a loaded configuration
            _rejudge(con, before + [r[0] for r in rows])
            return len(rows)

        return self._write(write, locks=[f"ground truth {source}"])

    def ground_truth_fingerprint(self) -> str | None:
        """The fingerprint of the ground-truth configuration loaded here (None: none yet)."""
        rows = self._rows("SELECT fingerprint FROM ground_truth_state", [])
        return rows[0]["fingerprint"] if rows else None

    def sync_ground_truth(self, fingerprint: str, load: Callable[[], Any]) -> bool:
        """Load the ground truth `load()` gives (an egoclean.temporal.ground_truth.GroundTruth) in place
        of the table's whole content, unless the loaded one has this fingerprint already.

        Returns True when it loaded. Every clip is judged again in the same transaction;
        when nothing changed, nothing is parsed or written."""

        def write(con: duckdb.DuckDBPyConnection) -> bool:
            state = con.execute("SELECT fingerprint FROM ground_truth_state").fetchall()
            if state and state[0][0] == fingerprint:
                return False
            rows = [_truth_row(sp, src) for sp, src in load().rows()]
            con.execute("DELETE FROM ground_truth")
            if rows:
                con.executemany("INSERT INTO ground_truth VALUES (?, ?, ?, ?, ?, ?)", rows)
            con.execute("DELETE FROM ground_truth_state")
            con.execute("INSERT INTO ground_truth_state VALUES (?, ?)", [fingerprint, _utcnow()])
            _rejudge(con)
            return True

        return self._write(write, locks=["ground truth"])

    def load_ground_truth_csv(self, path: str | os.PathLike | None = None, source: str | None = None) -> int:
        """Load a ground-truth CSV (None: the packaged seed) and replace its source's rows."""
        from egoclean.temporal.evaluation import load_ground_truth

        spans = load_ground_truth(path)
        return self.replace_ground_truth(spans, source or (defaults.SEED_SOURCE if path is None else str(path)))

    # -- reading -------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | dict | None = None) -> tuple[list[str], list[tuple]]:
        """Run `sql` on a read-only connection; return (column names, rows)."""
        columns, rows, _ = self.query_head(sql, params)
        return columns, rows

    def query_head(
        self,
        sql: str,
        params: Sequence[Any] | dict | None = None,
        max_rows: int | None = None,
        sandbox: bool = False,
        allow_files: bool = False,
    ) -> tuple[list[str], list[tuple], bool]:
        """Run `sql` read-only; return (column names, at most `max_rows` rows, whether
        more rows exist). Only max_rows + 1 rows are ever fetched.

        `sandbox=True` is for SQL from a user (`egoclean sql`): no extension is
        installed or auto-loaded (nothing is downloaded), settings cannot be changed,
        and unless `allow_files` nothing outside the database is read or written
        (no COPY TO, EXPORT, ATTACH, INSTALL, read_csv(...), URLs)."""
        if max_rows is not None and max_rows < 0:
            raise InvalidInputError(f"max_rows={max_rows}: must be >= 0")
        config = None
        if sandbox:
            config = dict(SANDBOX)
            if allow_files:
                config["enable_external_access"] = True

        def run(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple], bool]:
            try:
                cur = con.execute(sql, params) if params is not None else con.execute(sql)
                if cur.description is None:
                    return [], [], False
                names = [d[0] for d in cur.description]
                if max_rows is None:
                    return names, cur.fetchall(), False
                rows = cur.fetchmany(max_rows + 1)
                return names, rows[:max_rows], len(rows) > max_rows
            except duckdb.Error as e:
                msg = _one_line(str(e))
                if sandbox and isinstance(e, duckdb.PermissionException):
                    raise QueryError(
                        f"query refused on {self.location}: it would reach outside the database ({msg}); "
                        "SQL here is read-only and offline: allow file access explicitly (egoclean sql "
                        f"--allow-files) if you mean it, in query: {_short(sql)}"
                    ) from None
                if "read-only mode" in msg:
                    raise QueryError(
                        f"database {self.location} is opened read-only here; writes are refused "
                        f"({msg}) in query: {_short(sql)}"
                    ) from None
                if self.is_shared:
                    from egoclean.store.ducklake import redact_url

                    msg = redact_url(msg)
                raise QueryError(f"query failed on {self.location}: {msg} in query: {_short(sql)}") from None

        return self._read(run, config)

    def format_query(
        self,
        sql: str,
        params: Sequence[Any] | dict | None = None,
        max_rows: int | None = None,
        sandbox: bool = False,
        allow_files: bool = False,
    ) -> str:
        """Run a read-only query and render it as an aligned text table (see query_head)."""
        columns, rows, more = self.query_head(sql, params, max_rows, sandbox=sandbox, allow_files=allow_files)
        return format_table(columns, rows, more=more)

    def _rows(self, sql: str, params: list) -> list[dict]:
        if not self.is_shared and not self.path.is_file():
            return []

        def run(con: duckdb.DuckDBPyConnection) -> list[dict]:
            try:
                cur = con.execute(sql, params)
            except duckdb.CatalogException:
                return []  # a file whose schema was never created holds nothing
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

        return self._read(run)

    def clip(self, clip_id: str) -> dict | None:
        """The clips row of `clip_id` (paths as a dict), or None when it is not stored."""
        rows = self._rows("SELECT * FROM clips WHERE clip_id = ?", [ClipId.parse(clip_id).key])
        if not rows:
            return None
        row = rows[0]
        row["paths"] = dict(row["paths"] or {})
        return row

    def segments(self, clip_id: str, kind: str | None = None) -> list[dict]:
        """The segments rows of `clip_id` (optionally one kind), in time order."""
        key = ClipId.parse(clip_id).key
        if kind is None:
            return self._rows("SELECT * FROM segments WHERE clip_id = ? ORDER BY start_sec, kind", [key])
        return self._rows("SELECT * FROM segments WHERE clip_id = ? AND kind = ? ORDER BY start_sec", [key, kind])

    def window_scores(self, clip_id: str) -> list[dict]:
        """The per-window scores of `clip_id`, in time order."""
        return self._rows("SELECT * FROM window_scores WHERE clip_id = ? ORDER BY t_sec", [ClipId.parse(clip_id).key])

    def detection_eval(self, clip_id: str | None = None) -> list[dict]:
        """Rows of the detection_eval view (all clips, or one)."""
        if clip_id is None:
            return self._rows("SELECT * FROM detection_eval", [])
        return self._rows("SELECT * FROM detection_eval WHERE clip_id = ?", [ClipId.parse(clip_id).key])


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_cell(x)}" for k, x in v.items()) + "}"
    return str(v)


def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int | None = None, more: bool = False
) -> str:
    """An aligned box table like DuckDB's own: header, rows, then the row count
    (`more`: the query has rows beyond these, not fetched)."""
    if not columns:
        return "(no result)"
    shown = list(rows) if max_rows is None else list(rows[:max_rows])
    cells = [[_cell(v) for v in r] for r in shown]
    numeric = [
        all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in shown if r[i] is not None)
        and any(r[i] is not None for r in shown)
        for i in range(len(columns))
    ]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(parts: Sequence[str], right: Sequence[bool]) -> str:
        return "│ " + " │ ".join(
            p.rjust(w) if r else p.ljust(w) for p, w, r in zip(parts, widths, right)
        ) + " │"

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out = [rule("┌", "┬", "┐"), line([str(c).center(w) for c, w in zip(columns, widths)], [False] * len(widths))]
    out.append(rule("├", "┼", "┤"))
    out += [line(r, numeric) for r in cells]
    out.append(rule("└", "┴", "┘"))
    n = len(rows)
    footer = f"{n} row" + ("" if n == 1 else "s")
    if more:
        footer += " shown (more not fetched: raise --max-rows to see them)"
    elif len(shown) < n:
        footer += f" ({len(shown)} shown)"
    out.append(footer)
    return "\n".join(out)
