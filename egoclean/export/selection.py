"""Which clips to export, and what the export needs about each (`ClipInput`).

`select_clips` turns the store (all clips, a list of clip ids, or a SQL query returning
`clip_id` and optionally `start_sec`/`end_sec` spans) into `ClipInput`s: everything an
episode needs about one clip (rectified video, camera matrix, spans, window scores,
similarity matrix, embeddings). `clip_input_from_files` builds one from a clip's own
files instead. A clip whose files are in a remote data root carries their URLs
(`remote`); `localized` downloads them, one clip at a time, through
`egoclean.core.object_store.RemoteRoot` (bounded retries).
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egoclean.core import defaults, jsonin
from egoclean.core.errors import InvalidInputError
from egoclean.core.ids import ClipId
from egoclean.core.layout import INTRINSICS_SUFFIX, ClipLayout, intrinsics_beside, is_local, local_path
from egoclean.embed.windows import DEFAULT_WINDOW as WINDOW_FRAMES
from egoclean.export.episodes import EpisodeParams, EpisodePlan, plan_episodes
from egoclean.temporal.analysis import FILE_SUFFIXES as ANALYSIS_SUFFIXES


@dataclass
class ClipInput:
    """What the export needs about one clip, read from the store and the clip's files."""

    clip_id: str
    video: Path | None  # rectified MP4 (None: missing)
    fps: float
    width: int
    height: int
    duration_sec: float
    model: str | None
    random_weights: bool | None
    work: list[tuple[float, float]]
    anomalies: list[tuple[float, float]]
    window_ts: np.ndarray  # (N,) window start times
    window_scores: np.ndarray  # (N,) anomaly score per window
    sim: np.ndarray | None = None  # temporal-token similarity of the windows at sim_ts
    sim_ts: np.ndarray | None = None
    emb_path: Path | None = None  # <prefix>_emb.npy
    camera_matrix: list[list[float]] | None = None  # rectified pinhole K
    remote: dict[str, str] | None = None  # role -> URL of files in a remote data root (fetched when exported)
    materialized_at: str | None = None  # when the store last wrote the clip (unchanged clips are not re-exported)
    problem: str | None = None  # why the clip cannot be exported (recorded, not raised)
    trajectory: Path | None = None  # camera poses per frame (egoclean.motion.Trajectory Parquet), if tracked
    no_cycles: str | None = None  # why the work-cycle cuts cannot be used (the analysis unreadable; recorded)

    @property
    def cid(self) -> ClipId:
        return ClipId.parse(self.clip_id)

    @property
    def window_sec(self) -> float:
        return WINDOW_FRAMES / self.fps if self.fps > 0 else 0.0

    def plan(self, params: EpisodeParams) -> EpisodePlan:
        return plan_episodes(self.work, self.anomalies, self.duration_sec, sim=self.sim, ts=self.sim_ts,
                             window_sec=self.window_sec, params=params)


def _camera_matrix(*candidates: Path | None) -> list[list[float]] | None:
    """The camera matrix `K` of the first intrinsics JSON of `candidates` that exists (None: none does).

    Read with the project's bounded JSON reader; a file that is not an object with a 3x3 `K`
    of finite numbers is an InvalidInputError naming it (never a traceback, never a NaN matrix
    written into the dataset)."""
    for path in candidates:
        if path is not None and path.is_file():
            doc = jsonin.loads(path.read_bytes(), f"intrinsics {path}")
            k = doc.get("K") if isinstance(doc, dict) else None
            rows_ok = isinstance(k, list) and len(k) == 3 and all(isinstance(r, list) and len(r) == 3 for r in k)
            if not (rows_ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                    for r in k for v in r)):
                raise InvalidInputError(f"intrinsics {path}: K is not a 3x3 matrix of finite numbers")
            return [[float(v) for v in r] for r in k]
    return None


def _similarity(prefix: str | os.PathLike) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(temporal-token similarity, its window times) from the analysis files at `prefix`."""
    from egoclean.temporal.analysis import Analysis

    an = Analysis.load(prefix)
    return an.sim_temporal, (an.matrix_ts if an.matrix_ts is not None else an.ts)


def _read_similarity(ci: ClipInput, prefix: str | os.PathLike) -> None:
    """The clip's similarity from its analysis files into `ci`; when they cannot be read, why, in `ci.no_cycles`.

    Without the similarity the clip is still exported, in fixed-length pieces instead of at its
    work-cycle boundaries; the reason is recorded with the clip (meta/egoclean.json, the CLI and
    the Dagster metadata), never lost silently.
    """
    try:
        ci.sim, ci.sim_ts = _similarity(prefix)
    except (OSError, KeyError, ValueError) as e:  # InvalidInputError is a ValueError
        ci.sim = ci.sim_ts = None
        ci.no_cycles = (f"{e}; its episodes are fixed-length pieces, not cut at work cycles "
                        "(re-materialize similarity_matrix)")


def _clip_files(video: str) -> dict[str, Path]:
    """The files beside a clip's rectified video that the export reads (egoclean.core.layout names them)."""
    p = Path(video)
    here = ClipLayout(p.name.split("_rectified")[0], str(p.parent))
    return {
        "intrinsics": Path(here.intrinsics),
        "intrinsics_cli": intrinsics_beside(p),  # what `egoclean rectify OUT.mp4` writes
        "analysis": Path(here.analysis),  # Analysis.load prefix
    }


def _local(url: str | None) -> Path | None:
    """A local path for a stored path or file:// URL (None for a remote URL or none)."""
    return local_path(url) if url and is_local(url) else None


def _remote_files(key: str, video_url: str, emb_url: str | None) -> dict[str, str]:
    """The URLs of a clip's files in a remote data root (egoclean.core.layout names them)."""
    here = ClipLayout(key, video_url.rsplit("/", 1)[0])
    # the CLI names a rectified video's intrinsics after the video (layout.intrinsics_beside)
    beside = video_url.rsplit(".", 1)[0] + INTRINSICS_SUFFIX
    files = {"video": video_url, "intrinsics": here.intrinsics, "intrinsics_cli": beside}
    files |= {f"analysis{s}": here.analysis + s for s in ANALYSIS_SUFFIXES}
    if emb_url:
        files["emb"] = emb_url
    return files


def download(url: str, dest: Path) -> Path | None:
    """`url` (a remote fsspec URL) downloaded to `dest` with bounded retries; None when it is not there."""
    from egoclean.core.object_store import RemoteRoot

    try:
        return RemoteRoot(url.rsplit("/", 1)[0]).get(url, dest)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def localized(ci: ClipInput) -> Iterator[ClipInput]:
    """A copy of the clip with its remote files downloaded into a temporary folder, removed afterwards.

    One clip at a time, so local disk holds one clip's files whatever the selection's
    size. The caller's `ClipInput` is left as it was.
    """
    if not ci.remote:
        yield ci
        return
    with tempfile.TemporaryDirectory(prefix="egoclean-export-") as tmp:
        got: dict[str, Path] = {}
        for role, url in ci.remote.items():
            dest = download(url, Path(tmp) / url.rsplit("/", 1)[-1])
            if dest is not None:
                got[role] = dest
        if "video" not in got:
            yield dataclasses.replace(ci, problem=f"rectified video missing from storage: {ci.remote['video']}")
            return
        local = dataclasses.replace(ci, video=got["video"], emb_path=got.get("emb"), trajectory=got.get("trajectory"),
                                    camera_matrix=_camera_matrix(got.get("intrinsics"), got.get("intrinsics_cli")))
        if all(f"analysis{s}" in got for s in ANALYSIS_SUFFIXES):
            _read_similarity(local, Path(tmp) / ci.clip_id)
        else:
            lost = [ci.remote[f"analysis{s}"] for s in ANALYSIS_SUFFIXES if f"analysis{s}" not in got]
            local.no_cycles = (f"analysis missing from storage: {', '.join(lost)}; its episodes are fixed-length "
                               "pieces, not cut at work cycles (re-materialize similarity_matrix)")
        yield local


def _span(start: Any, end: Any, key: str, row: int) -> tuple[float, float]:
    """One selected span as (start, end) seconds; InvalidInputError naming the row, clip and value otherwise."""
    where = f"export selection, row {row} (clip {key})"
    vals = []
    for name, v in (("start_sec", start), ("end_sec", end)):
        if v is None:
            raise InvalidInputError(f"{where}: {name} is NULL; every selected span needs a start and an end in seconds")
        if isinstance(v, bool) or not isinstance(v, (int, float, decimal.Decimal)):
            raise InvalidInputError(f"{where}: {name}={v!r} is not a number of seconds")
        f = float(v)
        if not math.isfinite(f):
            raise InvalidInputError(f"{where}: {name}={v!r} is not a finite number of seconds")
        vals.append(f)
    if vals[0] >= vals[1]:
        raise InvalidInputError(f"{where}: start_sec={vals[0]:g} is not before end_sec={vals[1]:g} "
                                "(a span runs forward and is not empty)")
    return vals[0], vals[1]


def _merged(spans: list[tuple[float, float]], key: str, duration_sec: float) -> list[tuple[float, float]]:
    """The selected spans of a clip, inside it and each frame once: overlapping or repeated spans are joined."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if a < 0 or (duration_sec > 0 and b > duration_sec + defaults.EXPORT_SPAN_END_TOLERANCE_SEC):
            raise InvalidInputError(f"export selection: span {a:g}-{b:g} s of clip {key} is outside the clip "
                                    f"(0-{duration_sec:g} s)")
        if out and a < out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def select_clips(store, sql: str | None = None, clips: Sequence[str] | None = None) -> list[ClipInput]:
    """The clips (and spans) to export: all stored clips, the given ids, or a SQL selection.

    `sql` runs read-only in the store's sandbox (as `egoclean sql` does: only a query,
    nothing outside the database, nothing downloaded) and must return a `clip_id` column; with
    `start_sec` and `end_sec` columns too, those rows are the spans exported (instead of
    every work span of the clip). Clip ids the store does not hold are an error naming them.
    """
    spans: dict[str, list[tuple[float, float]]] | None = None
    if sql is not None:
        cols, rows, _ = store.query_head(sql, sandbox=True)
        if "clip_id" not in cols:
            raise InvalidInputError(f"export selection: the query must return a clip_id column, got {cols}")
        ci = cols.index("clip_id")
        keys = []
        for r in rows:
            k = ClipId.parse(str(r[ci])).key
            if k not in keys:
                keys.append(k)
        if "start_sec" in cols and "end_sec" in cols:
            si, ei = cols.index("start_sec"), cols.index("end_sec")
            spans = {}
            for n, r in enumerate(rows, 1):
                key = ClipId.parse(str(r[ci])).key
                spans.setdefault(key, []).append(_span(r[si], r[ei], key, n))
    elif clips:
        keys = [ClipId.parse(c).key for c in clips]
    else:
        _, rows = store.query("SELECT clip_id FROM clips ORDER BY clip_id")
        keys = [r[0] for r in rows]
    known = {r[0] for r in store.query("SELECT clip_id FROM clips")[1]} if keys else set()
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise InvalidInputError(
            f"export selection names {len(unknown)} clip(s) not in the database {store.location}: "
            f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} (materialize them first)"
        )
    out = []
    for key in keys:
        row = store.clip(key)
        segs = store.segments(key)
        ws = store.window_scores(key)
        paths = row.get("paths") or {}
        video = _local(paths.get("rectified"))
        ci = ClipInput(
            clip_id=key, video=video, fps=float(row.get("fps") or 0), width=int(row.get("width") or 0),
            height=int(row.get("height") or 0), duration_sec=float(row.get("duration_sec") or 0),
            model=row.get("model"), random_weights=row.get("random_weights"),
            materialized_at=None if row.get("materialized_at") is None else str(row["materialized_at"]),
            work=[(s["start_sec"], s["end_sec"]) for s in segs if s["kind"] == "work"],
            anomalies=[(s["start_sec"], s["end_sec"]) for s in segs if s["kind"] == "anomaly"],
            window_ts=np.asarray([w["t_sec"] for w in ws], dtype=np.float64),
            window_scores=np.asarray([np.nan if w["score"] is None else w["score"] for w in ws], dtype=np.float64),
        )
        if spans is not None:
            ci.work = _merged(spans.get(key, []), key, ci.duration_sec)
        traj = store.trajectory(key)
        if traj is not None:
            ci.trajectory = _local(traj["path"])
        if video is None and paths.get("rectified"):
            ci.remote = _remote_files(key, paths["rectified"], paths.get("embeddings"))
            if traj is not None and ci.trajectory is None:
                ci.remote["trajectory"] = traj["path"]
        elif video is None:
            ci.problem = "no rectified video recorded for the clip"
        elif not video.is_file():
            ci.problem = f"rectified video missing from storage: {video}"
        else:
            files = _clip_files(str(video))
            try:
                ci.camera_matrix = _camera_matrix(files["intrinsics"], files["intrinsics_cli"])
            except InvalidInputError as e:
                ci.problem = str(e)  # recorded in the dataset's `skipped`, the other clips go on
            _read_similarity(ci, files["analysis"])
            emb = _local(paths.get("embeddings"))
            if emb is not None and emb.is_file():
                ci.emb_path = emb
        out.append(ci)
    return out


def clip_input_from_files(
    clip_id: str, video: str | os.PathLike, segments_json: str | os.PathLike, analysis_prefix: str | os.PathLike | None,
    intrinsics_json: str | os.PathLike | None = None, emb_path: str | os.PathLike | None = None,
    trajectory: str | os.PathLike | None = None,
) -> ClipInput:
    """A `ClipInput` from a clip's own files (the Dagster assets' outputs) instead of the store.

    `segments_json` is what anomaly_segments writes (Detection.to_dict(series=True) plus
    clip_id, model, random_weights, duration_sec).
    """
    from egoclean.media.video import probe

    doc = json.loads(Path(segments_json).read_text())
    info = probe(video)
    ci = ClipInput(
        clip_id=ClipId.parse(clip_id).key, video=Path(video), fps=info.fps, width=info.width, height=info.height,
        duration_sec=float(doc.get("duration_sec") or info.duration_sec), model=doc.get("model"),
        random_weights=doc.get("random_weights"),
        work=[(s["start_sec"], s["end_sec"]) for s in doc.get("work_spans", [])],
        anomalies=[(s["start_sec"], s["end_sec"]) for s in doc.get("spans", [])],
        window_ts=np.asarray(doc.get("ts", []), dtype=np.float64),
        window_scores=np.asarray([np.nan if v is None else v for v in doc.get("score", [])], dtype=np.float64),
        emb_path=Path(emb_path) if emb_path else None,
        camera_matrix=_camera_matrix(Path(intrinsics_json) if intrinsics_json else None),
        trajectory=Path(trajectory) if trajectory else None,
    )
    if analysis_prefix is not None:
        ci.sim, ci.sim_ts = _similarity(analysis_prefix)
    return ci
