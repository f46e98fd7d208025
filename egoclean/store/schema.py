"""The segment tables' schema: tables, macros and the detection_eval view, in both backends.

`detection_eval` (a view over `detection_matches`) has one row per outcome: each
ground-truth span with the detection matched to it one-to-one at IoU >= 0.5
('matched'), else its best-overlap detection ('missed'; the detection columns are NULL
when nothing overlaps); each detection on a clip with ground truth that matches no span
('false positive', with its best IoU); and, for a clip whose duration is not the one its
labels were made on, each span as 'not judged'. Clips without ground truth are not
listed. Times are seconds; `truth` / `detected` show them as mm:ss.

The schema's version lives in the view's comment (`SCHEMA_TAG`), so a database that
already has it is not rewritten on every write.
"""

from __future__ import annotations

import functools
import hashlib

from egoclean.core.errors import StoreSchemaError

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
CREATE TABLE IF NOT EXISTS trajectories (
    clip_id VARCHAR {pk},
    factory VARCHAR NOT NULL,
    worker VARCHAR NOT NULL,
    frames BIGINT,
    tracked_frames BIGINT,
    tracked_fraction DOUBLE,
    segments INTEGER,                    -- tracked stretches (a new one after each tracking gap)
    metric BOOLEAN,                      -- every segment's scale from the floor and the camera height
    path_length DOUBLE,                  -- metres when metric, else the clip's own unit
    fps DOUBLE,
    path VARCHAR,                        -- the per-frame poses as a Parquet artifact (the same rows as `poses`)
    materialized_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS poses (
    clip_id VARCHAR NOT NULL,            -- one row per frame of each clip in `trajectories`
    frame BIGINT NOT NULL,
    t DOUBLE NOT NULL,                   -- seconds from the clip's start
    x DOUBLE,                            -- camera-to-world position (NULL where not tracked)
    y DOUBLE,
    z DOUBLE,
    qx DOUBLE,                           -- camera-to-world orientation (OpenCV camera axes)
    qy DOUBLE,
    qz DOUBLE,
    qw DOUBLE,
    tracked BOOLEAN NOT NULL,
    segment INTEGER,                     -- tracked stretch (-1 where not tracked)
    inliers INTEGER
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
# The columns of a poses row after its clip_id, from a trajectory table `src` (egoclean.motion.trajectory
# COLUMNS): an untracked frame's pose is NULL (the Parquet artifact holds NaN there), so SQL aggregates skip it.
POSES_SELECT = ", ".join(["{src}.frame", "{src}.t"] + [f"CASE WHEN {{src}}.tracked THEN {{src}}.{c} END"
                                                       for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]
                         + ["{src}.tracked", "{src}.segment", "{src}.inliers"])
SCHEMA_TAG = "egoclean schema " + hashlib.sha256(SCHEMA.encode()).hexdigest()[:16]


def has_schema(con) -> bool:
    """True when the database already has this version of the schema.

    The version lives in the view's comment; skipping the DDL when it matches keeps
    writers from rewriting the catalog on every clip."""
    tag = con.execute(
        "SELECT comment FROM duckdb_views() WHERE view_name = 'detection_eval' AND NOT internal"
        " AND database_name = current_database()"
    ).fetchone()
    return bool(tag and tag[0] == SCHEMA_TAG)


@functools.lru_cache(maxsize=1)
def expected_columns() -> dict[str, frozenset[str]]:
    """Each table of this version's schema and its column names (from the DDL itself, in memory)."""
    import duckdb  # the store's engine

    con = duckdb.connect()
    try:
        con.execute(EMBEDDED_SCHEMA)
        rows = con.execute("SELECT c.table_name, c.column_name FROM duckdb_columns() c JOIN duckdb_tables() t "
                           "USING (database_name, schema_name, table_name)").fetchall()
    finally:
        con.close()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return {t: frozenset(c) for t, c in out.items()}


def check_columns(con) -> None:
    """Raise StoreSchemaError when a table that exists lacks columns this version writes."""
    rows = con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                       "WHERE database_name = current_database() AND schema_name = 'main'").fetchall()
    have: dict[str, set[str]] = {}
    for table, column in rows:
        have.setdefault(table, set()).add(column)
    problems = [f"{t} lacks {', '.join(sorted(cols - have[t]))}" for t, cols in sorted(expected_columns().items())
                if t in have and cols - have[t]]
    if problems:
        raise StoreSchemaError(
            f"its tables were made by another EgoClean version ({'; '.join(problems)}): point EGOCLEAN_DB "
            "(or --db) at a new store, or move this one aside and re-materialize anomaly_segments to fill a new one")


def ensure_schema(con, schema: str = EMBEDDED_SCHEMA) -> None:
    """Create or update the schema unless the database already has this version of it.

    A database whose existing tables lack this version's columns is refused (StoreSchemaError)
    before anything is changed. A store made before `poses` was a table has a view of that
    name instead (read_parquet over a local data root's trajectory files): it becomes the
    table, filled from those files (`_fill_poses_from_files`)."""
    if has_schema(con):
        return
    check_columns(con)
    old_view = _is_view(con, "poses")
    if old_view:
        con.execute("DROP VIEW poses")
    con.execute(schema)
    if old_view:
        _fill_poses_from_files(con)
    con.execute(f"COMMENT ON VIEW detection_eval IS '{SCHEMA_TAG}'")


def _is_view(con, name: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal"
                       " AND database_name = current_database()", [name]).fetchone()[0] > 0


def _fill_poses_from_files(con) -> None:
    """Fill the new `poses` table from the trajectory files the old view read: each clip of
    `trajectories` whose `path` is a local file. A clip whose file is elsewhere (a remote data
    root: the view never read those) keeps its summary without poses until camera_trajectory
    is materialized again; a warning counts them."""
    import logging
    import os

    rows = con.execute("SELECT clip_id, path FROM trajectories ORDER BY clip_id").fetchall()
    local = [(c, p) for c, p in rows if p and os.path.isfile(p)]
    if local:
        con.execute("INSERT INTO poses SELECT t.clip_id, " + POSES_SELECT.format(src="p") +
                    " FROM read_parquet(?, filename = true) p JOIN trajectories t ON t.path = p.filename"
                    " ORDER BY t.clip_id, p.frame", [[p for _, p in local]])
    if len(local) < len(rows):
        logging.getLogger(__name__).warning(
            "poses: %d clip(s) of trajectories have no local trajectory file to fill the new poses table from "
            "(first: %s); materialize camera_trajectory again for them", len(rows) - len(local),
            next(c for c, p in rows if (c, p) not in local))

