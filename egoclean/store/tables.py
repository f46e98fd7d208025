"""The segment tables of the domain: clips, segments, window scores, ground truth, detection_eval,
and the camera's path (trajectories, poses).

`Store` is the one API over both backends (`egoclean.store.backends`: an embedded
DuckDB file, or a shared DuckLake); nothing here asks which one it holds.

Re-materializing a clip replaces its rows (DELETE then INSERT in one transaction over
`clips`, `segments` and `window_scores`), so a reader sees either the old clip or the
new one, never half of one and never duplicates. A clip's camera path works the same way:
its `trajectories` row and its `poses` rows (one per frame) are replaced together.

`ground_truth` holds the spans in effect (egoclean.temporal.ground_truth.GroundTruth: precedence,
one source per file, duplicates collapsed), loaded whole by `sync_ground_truth` only when
the configuration or its files changed. `detection_matches` holds the verdict of
`egoclean.temporal.ground_truth.judge` per clip (the same function the asset check and
`egoclean detect` use), rewritten in the transaction that changes the clip's segments or
the ground truth, so it can never disagree with them (`detection_eval`, a view over it:
egoclean.store.schema).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import duckdb

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError
from egoclean.core.ids import ClipId
from egoclean.store.backends import open_backend
from egoclean.store.sandbox import Refused
from egoclean.store.schema import POSES_SELECT
from egoclean.store.text import format_table, one_line, short

DEFAULT_RETRIES = defaults.STORE_ATTEMPTS
DEFAULT_TIMEOUT_SEC = defaults.STORE_TIMEOUT_SEC
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

T = TypeVar("T")
# The per-frame columns of a trajectory (egoclean.motion.trajectory.COLUMNS) that `poses` holds.
POSE_COLUMNS = ("frame", "t", "x", "y", "z", "qx", "qy", "qz", "qw", "tracked", "segment", "inliers")


@contextlib.contextmanager
def interruptible(con: duckdb.DuckDBPyConnection):
    """Ctrl-C (SIGINT) interrupts the query running on `con` (DuckDB's own interrupt, which stops it
    between vectors): Python's handler alone would run only once DuckDB hands control back, often
    long after. Only in the main thread, where signal handlers live."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: con.interrupt())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class QueryError(InvalidInputError):
    """A SQL query failed (DuckDB's message) or tried to write through a read-only query."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
    or another writer holds the same clip (shared): `egoclean.store.backends`. `path`
    stays as given; `location` is where the tables are, for messages."""

    path: str | os.PathLike = Path(defaults.DB_PATH)
    retries: int = DEFAULT_RETRIES  # connection attempts in all (>= 1)
    timeout_sec: float = DEFAULT_TIMEOUT_SEC  # give up retrying after this long
    data_path: str | None = None  # shared store only: where a new lake writes Parquet
    # memory of a query typed by a user (query_head with sandbox=True), a DuckDB size; no disk spill
    sql_memory: str = defaults.SQL_MEMORY

    def __post_init__(self) -> None:
        self.retries = max(1, int(self.retries))
        self.timeout_sec = float(self.timeout_sec)
        self._backend = open_backend(self.path, self.data_path, self.retries, self.timeout_sec)

    @property
    def location(self) -> str:
        """Where the tables are, for messages and metadata (a password in a URL hidden)."""
        return self._backend.location

    def _write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], locks: Sequence[str] = ()) -> T:
        """Run `fn` in one transaction on a read-write connection (schema ensured).

        `locks` name what the transaction replaces (a clip, a ground-truth source):
        writers of the same name take turns."""
        return self._backend.write(fn, locks)

    def _read(self, fn: Callable[[duckdb.DuckDBPyConnection], T], config: dict | None = None) -> T:
        return self._backend.read(fn, config)

    # -- writing -------------------------------------------------------------------

    def init(self) -> str | os.PathLike:
        """Create the tables and the detection_eval view if missing (idempotent); returns `path`."""
        self._backend.init()
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
        """Remove one clip's rows from every per-clip table (clips, segments, window_scores, trajectories, poses)."""
        key = ClipId.parse(clip_id).key

        def write(con: duckdb.DuckDBPyConnection) -> None:
            for table in ("clips", "segments", "window_scores", "trajectories", "poses"):
                con.execute(f"DELETE FROM {table} WHERE clip_id = ?", [key])
            _rejudge(con, [key])

        self._write(write, locks=[f"clip {key}", f"trajectory {key}"])

    def replace_trajectory(self, row: dict, poses, materialized_at: datetime | None = None) -> dict:
        """Replace one clip's row of `trajectories` (egoclean.motion.steps.Tracked.row()) and its
        rows of `poses` (`poses`: the per-frame table, a pyarrow Table with the columns of
        egoclean.motion.trajectory.COLUMNS, one row per frame) in one transaction, so the
        summary and the poses never disagree and a re-materialized clip is never there twice.

        The poses go in with one INSERT that scans the Arrow table (no Python loop per frame);
        on the shared store that is one Parquet file per clip in the lake's data path."""
        key = ClipId.parse(str(row["clip_id"]))
        values = [key.key, key.factory_dir, key.worker_dir, int(row["frames"]), int(row["tracked_frames"]),
                  float(row["tracked_fraction"]), int(row["segments"]), bool(row["metric"]),
                  float(row["path_length"]), float(row["fps"]), str(row["path"]), materialized_at or _utcnow()]
        names = set(getattr(poses, "column_names", None) or ())
        missing = [c for c in POSE_COLUMNS if c not in names]
        if missing:
            raise InvalidInputError(f"replace_trajectory {key.key}: the poses lack column(s) {', '.join(missing)}")
        if poses.num_rows != values[3]:
            raise InvalidInputError(f"replace_trajectory {key.key}: {poses.num_rows} pose rows for a summary of "
                                    f"{values[3]} frames")
        view = f"egoclean_poses_{os.getpid()}_{threading.get_ident()}"

        def write(con: duckdb.DuckDBPyConnection) -> dict:
            con.execute("DELETE FROM trajectories WHERE clip_id = ?", [key.key])
            con.execute("DELETE FROM poses WHERE clip_id = ?", [key.key])
            con.execute("INSERT INTO trajectories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            con.register(view, poses)
            try:
                con.execute(f"INSERT INTO poses SELECT ?, {POSES_SELECT.format(src=view)} FROM {view} ORDER BY frame",
                            [key.key])
            finally:
                con.unregister(view)
            return {"clip_id": key.key, "poses": int(poses.num_rows)}

        return self._write(write, locks=[f"trajectory {key.key}"])

    def trajectory(self, clip_id: str) -> dict | None:
        """The clip's row of `trajectories`, or None."""
        rows = self._rows("SELECT * FROM trajectories WHERE clip_id = ?", [ClipId.parse(clip_id).key])
        return rows[0] if rows else None

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
            # DuckDB's default would be 80 % of RAM, then spilling to a temporary folder on disk
            config = dict(SANDBOX, memory_limit=self.sql_memory, temp_directory="")
            if allow_files:
                config["enable_external_access"] = True

        def run(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple], bool]:
            if sandbox:
                try:
                    self._backend.check_user_sql(con, sql, allow_files)
                except Refused as e:
                    hint = (": allow file access explicitly (egoclean sql --allow-files) if you mean it"
                            if self._backend.files_allowed_on_request else "")
                    raise QueryError(f"query refused on {self.location}: {self._backend.redact(str(e))}; SQL here "
                                     f"is read-only and offline{hint}, in query: {short(sql)}") from None
            try:
                with interruptible(con) if sandbox else contextlib.nullcontext():
                    cur = con.execute(sql, params) if params is not None else con.execute(sql)
                    if cur.description is None:
                        return [], [], False
                    names = [d[0] for d in cur.description]
                    if max_rows is None:
                        return names, cur.fetchall(), False
                    rows = cur.fetchmany(max_rows + 1)
                    return names, rows[:max_rows], len(rows) > max_rows
            except duckdb.InterruptException:
                raise KeyboardInterrupt from None  # Ctrl-C: the CLI says "interrupted", exit 130
            except duckdb.OutOfMemoryException as e:
                if not sandbox:
                    raise
                # DuckDB's first sentence (what it could not allocate, how much was in use); its advice
                # (SET memory_limit, a temp_directory) is what the sandbox refuses
                said = one_line(str(e)).split(" Database is launched", 1)[0].split(" Possible solutions", 1)[0]
                raise QueryError(
                    f"query on {self.location} needs more memory than its limit of {self.sql_memory} "
                    f"(EGOCLEAN_SQL_MEMORY; nothing is spilled to disk): raise EGOCLEAN_SQL_MEMORY or narrow the "
                    f"query ({self._backend.redact(short(said))}), in query: {short(sql)}") from None
            except duckdb.Error as e:
                msg = self._backend.redact(one_line(str(e)))
                if sandbox and isinstance(e, duckdb.PermissionException):
                    raise QueryError(
                        f"query refused on {self.location}: it would reach outside the database ({msg}); "
                        "SQL here is read-only and offline: allow file access explicitly (egoclean sql "
                        f"--allow-files) if you mean it, in query: {short(sql)}"
                    ) from None
                if "read-only mode" in msg:
                    raise QueryError(
                        f"database {self.location} is opened read-only here; writes are refused "
                        f"({msg}) in query: {short(sql)}"
                    ) from None
                raise QueryError(f"query failed on {self.location}: {msg} in query: {short(sql)}") from None

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
        if not self._backend.exists():
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


