"""Export clean work spans from the DuckDB store as a LeRobot v3.0 dataset.

`select_clips` turns the store (all clips, a list of clip ids, or a SQL query returning
`clip_id` and optionally `start_sec`/`end_sec` spans) into `ClipInput`s: everything an
episode needs about one clip (rectified video, camera matrix, spans, window scores,
similarity matrix, embeddings). `export_dataset` plans each clip's episodes
(`egoclean.export.episodes`), writes them into the dataset directory and publishes it
atomically:

- **No re-encode by default.** Episodes are time ranges of video files: the rectified
  H.264 is copied packet for packet (`egoclean.media.remux`), one run of whole groups of
  pictures per clean work span, many spans per file. `resolution=N` re-encodes instead
  (frames scaled to height N, width keeping the aspect ratio, camera matrix scaled with
  them) and writes only the episodes' own frames.
- **Append, replace.** A dataset directory is ours when it holds `meta/egoclean.json`.
  Exporting clips that are not in it appends new files; nothing already there is
  rewritten. Exporting a clip that is already there replaces its episodes: its old rows
  go, the episode and frame indices after them are renumbered (only those parquet files
  are rewritten; video files are kept, ranges no episode uses any more stay as unused
  bytes until a file loses all its episodes and is deleted).
- **Atomic.** The new version is assembled in a hidden sibling directory (unchanged
  files hard-linked, not copied), validated with `egoclean.export.lerobot.validate`, then
  swapped in by two renames; a failure before the swap leaves the previous dataset as it
  was, and a crash between the renames is repaired by the next export.
- **Bad input** is skipped with the reason recorded in `meta/egoclean.json`
  (`skipped`): a clip with no work spans, spans shorter than the minimum, a clip whose
  rectified video is missing, a clip whose size or frame rate differs from the
  dataset's. An output directory holding anything else, or a selection naming clips
  the store does not have, is an error before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from egoclean.core import atomic, defaults

from egoclean.export import lerobot
from egoclean.temporal.analysis import FILE_SUFFIXES as ANALYSIS_SUFFIXES
from egoclean.export.episodes import EpisodeParams, EpisodePlan, plan_episodes
from egoclean.core.errors import InvalidInputError
from egoclean.core.ids import ClipId
from egoclean.core.layout import INTRINSICS_SUFFIX, ClipLayout, intrinsics_beside
from egoclean.embed.windows import DEFAULT_WINDOW as WINDOW_FRAMES

VIDEO_KEY = "observation.images.egocentric"
SCORE_KEY = "observation.anomaly_score"
META_PATH = "meta/egoclean.json"
CARD_PATH = "README.md"
FORMAT_VERSION = 1
DEFAULT_REENCODE_CRF = 23
DEFAULT_REENCODE_PRESET = "veryfast"
SOURCE_DATASET = defaults.DATASET_REPO
SOURCE_LICENCE = "Apache-2.0 (gated: accept the dataset's conditions on Hugging Face)"
PREVIOUS_SUFFIX = ".previous"


def task_for(factory: str) -> str:
    """The task string of a factory's work (the source has no language labels)."""
    return f"repetitive manual work at a {factory} workstation"


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

    @property
    def cid(self) -> ClipId:
        return ClipId.parse(self.clip_id)

    @property
    def window_sec(self) -> float:
        return WINDOW_FRAMES / self.fps if self.fps > 0 else 0.0

    def plan(self, params: EpisodeParams) -> EpisodePlan:
        return plan_episodes(self.work, self.anomalies, self.duration_sec, sim=self.sim, ts=self.sim_ts,
                             window_sec=self.window_sec, params=params)


# ----------------------------------------------------------------------------- selection


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
    """A local path for a stored path or file:// URL (None for a remote URL)."""
    if not url:
        return None
    url = url.removeprefix("file://")
    if "://" in url:
        return None
    return Path(url)


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


@contextlib.contextmanager
def _localized(ci: ClipInput) -> Iterator[ClipInput]:
    """The clip with its remote files downloaded into a temporary folder, removed afterwards.

    One clip at a time, so local disk holds one clip's files whatever the selection's size.
    """
    if not ci.remote:
        yield ci
        return
    import fsspec  # imported here: only exports from a remote data root need it

    from egoclean.temporal.analysis import Analysis

    with tempfile.TemporaryDirectory(prefix="egoclean-export-") as tmp:
        got: dict[str, Path] = {}
        for role, url in ci.remote.items():
            fs, path = fsspec.core.url_to_fs(url)
            if not fs.exists(path):
                continue
            dest = Path(tmp) / path.rsplit("/", 1)[-1]
            fs.get_file(path, str(dest))
            got[role] = dest
        if "video" not in got:
            ci.problem = f"rectified video missing from storage: {ci.remote['video']}"
            yield ci
            return
        ci.video = got["video"]
        for role in ("intrinsics", "intrinsics_cli"):
            if role in got:
                ci.camera_matrix = json.loads(got[role].read_text()).get("K")
                break
        if all(f"analysis{s}" in got for s in ANALYSIS_SUFFIXES):
            an = Analysis.load(Path(tmp) / ci.clip_id)
            ci.sim, ci.sim_ts = an.sim_temporal, (an.matrix_ts if an.matrix_ts is not None else an.ts)
        ci.emb_path = got.get("emb")
        try:
            yield ci
        finally:
            ci.video, ci.sim, ci.emb_path = None, None, None


def select_clips(store, sql: str | None = None, clips: Sequence[str] | None = None) -> list[ClipInput]:
    """The clips (and spans) to export: all stored clips, the given ids, or a SQL selection.

    `sql` runs read-only on the store and must return a `clip_id` column; with
    `start_sec` and `end_sec` columns too, those rows are the spans exported (instead of
    every work span of the clip). Clip ids the store does not hold are an error naming them.
    """
    from egoclean.temporal.analysis import Analysis

    spans: dict[str, list[tuple[float, float]]] | None = None
    if sql is not None:
        cols, rows = store.query(sql)
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
            for r in rows:
                spans.setdefault(ClipId.parse(str(r[ci])).key, []).append((float(r[si]), float(r[ei])))
    elif clips:
        keys = [ClipId.parse(c).key for c in clips]
    else:
        _, rows = store.query("SELECT clip_id FROM clips ORDER BY clip_id")
        keys = [r[0] for r in rows]
    known = {r[0] for r in store.query("SELECT clip_id FROM clips")[1]} if keys else set()
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise InvalidInputError(
            f"export selection names {len(unknown)} clip(s) not in the database {store.path}: "
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
            ci.work = sorted(spans.get(key, []))
        if video is None and paths.get("rectified"):
            ci.remote = _remote_files(key, paths["rectified"], paths.get("embeddings"))
        elif video is None:
            ci.problem = "no rectified video recorded for the clip"
        elif not video.is_file():
            ci.problem = f"rectified video missing from storage: {video}"
        else:
            files = _clip_files(str(video))
            for name in ("intrinsics", "intrinsics_cli"):
                if files[name].is_file():
                    ci.camera_matrix = json.loads(files[name].read_text()).get("K")
                    break
            with contextlib.suppress(OSError, KeyError, ValueError):
                an = Analysis.load(files["analysis"])
                ci.sim = an.sim_temporal
                ci.sim_ts = an.matrix_ts if an.matrix_ts is not None else an.ts
            emb = _local(paths.get("embeddings"))
            if emb is not None and emb.is_file():
                ci.emb_path = emb
        out.append(ci)
    return out


def clip_input_from_files(
    clip_id: str, video: str | os.PathLike, segments_json: str | os.PathLike, analysis_prefix: str | os.PathLike | None,
    intrinsics_json: str | os.PathLike | None = None, emb_path: str | os.PathLike | None = None,
) -> ClipInput:
    """A `ClipInput` from a clip's own files (the Dagster assets' outputs) instead of the store.

    `segments_json` is what anomaly_segments writes (Detection.to_dict(series=True) plus
    clip_id, model, random_weights, duration_sec).
    """
    from egoclean.temporal.analysis import Analysis
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
    )
    if intrinsics_json and Path(intrinsics_json).is_file():
        ci.camera_matrix = json.loads(Path(intrinsics_json).read_text()).get("K")
    if analysis_prefix is not None:
        an = Analysis.load(analysis_prefix)
        ci.sim, ci.sim_ts = an.sim_temporal, (an.matrix_ts if an.matrix_ts is not None else an.ts)
    return ci


def plan_table(plan: EpisodePlan, fps: float) -> dict:
    """A clip's episode plan as JSON-ready rows (what training_episodes stores and shows)."""
    return {
        "cycle": None if plan.cycle is None else {"period_sec": plan.cycle.period_sec,
                                                  "phase_sec": plan.cycle.phase_sec,
                                                  "strength": plan.cycle.strength},
        "params": plan.params.to_dict(),
        "episodes": [{"start_sec": e.start_sec, "end_sec": e.end_sec, "frames": list(e.frames(fps)),
                      "cycle_index": e.cycle_index, "n_cycles": e.n_cycles} for e in plan.episodes],
        "skipped": [{"start_sec": s.start_sec, "end_sec": s.end_sec, "reason": s.reason} for s in plan.skipped],
        "kept_sec": plan.kept_sec,
    }


# ----------------------------------------------------------------------------- the dataset on disk


@dataclass
class Existing:
    """The dataset already in the output directory (empty when there is none)."""

    info: dict | None = None
    episodes: Any = None  # pandas DataFrame
    tasks: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def _recover(out: Path) -> None:
    """Finish a swap that crashed between its two renames (the previous version is put back)."""
    prev = out.with_name(f".{out.name}{PREVIOUS_SUFFIX}")
    if prev.is_dir():
        if not out.exists():
            os.rename(prev, out)
        else:
            shutil.rmtree(prev, ignore_errors=True)


def open_existing(out: Path) -> Existing:
    """Read the dataset at `out`; a directory holding anything but an EgoClean export is an error."""
    import pandas as pd

    _recover(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"export output {out}: exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return Existing()
    if not (out / META_PATH).is_file() or not (out / lerobot.INFO_PATH).is_file():
        what = "another LeRobot dataset" if (out / lerobot.INFO_PATH).is_file() else "other files"
        raise InvalidInputError(
            f"export output {out}: holds {what}, not an EgoClean export (no {META_PATH}); "
            "choose an empty or new directory"
        )
    info = lerobot.read_info(out)
    if info.get("codebase_version") != lerobot.CODEBASE_VERSION:
        raise InvalidInputError(f"export output {out}: dataset version {info.get('codebase_version')}, "
                                f"this exporter writes {lerobot.CODEBASE_VERSION}")
    tasks = pd.read_parquet(out / lerobot.TASKS_PATH)
    return Existing(
        info=info,
        episodes=lerobot.read_table(out, "meta/episodes"),
        tasks={str(t): int(i) for t, i in zip(tasks.index, tasks["task_index"])},
        meta=json.loads((out / META_PATH).read_text()),
    )


def _write_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a hard link to the previous version's file: never write through it
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="snappy")


def _episodes_table(df):
    """The episode rows as an Arrow table with the list columns' types fixed (every file the same schema)."""
    import pyarrow as pa

    t = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    fixed = {"egoclean/embedding": pa.list_(pa.float32()), "egoclean/camera_matrix": pa.list_(pa.float64()),
             "tasks": pa.list_(pa.string())}
    for name, typ in fixed.items():
        if name in t.column_names:
            t = t.set_column(t.column_names.index(name), name, t.column(name).cast(typ))
    return t


def _link_tree(src: Path, dst: Path) -> None:
    """Mirror `src` into `dst` with hard links (copies where links are impossible)."""
    for p in src.rglob("*"):
        q = dst / p.relative_to(src)
        if p.is_dir():
            q.mkdir(parents=True, exist_ok=True)
        else:
            q.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(p, q)
            except OSError:
                shutil.copy2(p, q)


# ----------------------------------------------------------------------------- writing episodes


@dataclass
class ExportOptions:
    """How to export: episode planning, the video path (copy or re-encode), and tasks."""

    params: EpisodeParams = field(default_factory=EpisodeParams)
    resolution: int | None = None  # re-encode to this height (None: stream copy)
    crf: int = DEFAULT_REENCODE_CRF
    preset: str = DEFAULT_REENCODE_PRESET
    check: bool = True  # validate the assembled dataset before publishing it
    only_changed: bool = True  # leave a clip alone when the dataset holds it from the same materialization


@dataclass
class ExportReport:
    """What one export did."""

    out: Path
    clips: list[str]
    episodes_added: int
    episodes_removed: int
    frames_added: int
    total_episodes: int
    total_frames: int
    kept_sec: float
    dropped_sec: float
    skipped: dict[str, str]
    bytes_video: int
    seconds: float
    files_written: list[str]
    unchanged: list[str] = field(default_factory=list)  # clips left as they were (same materialization)
    episodes_new: int = 0  # of episodes_added, those of clips the dataset did not hold before

    @property
    def episodes_rewritten(self) -> int:
        """Episodes written for clips the dataset already held (re-exported: their old ones removed)."""
        return self.episodes_added - self.episodes_new

    def summary(self) -> str:
        return (f"{self.out}: {self.episodes_added} episode(s) written from {len(self.clips)} clip(s) "
                f"({self.kept_sec:.1f} s kept, {self.dropped_sec:.1f} s dropped): {self.episodes_new} new, "
                f"{self.episodes_rewritten} re-exported in place of {self.episodes_removed} removed; "
                f"dataset now {self.total_episodes} episodes, "
                f"{self.total_frames} frames" + (f"; skipped {len(self.skipped)}" if self.skipped else "")
                + (f"; {len(self.unchanged)} unchanged clip(s) left as they were" if self.unchanged else ""))


def _target_size(ci: ClipInput, resolution: int | None) -> tuple[int, int]:
    if resolution is None:
        return ci.width, ci.height
    h = int(resolution) - int(resolution) % 2
    w = int(round(ci.width * h / ci.height / 2)) * 2
    return w, h


def _scaled_k(k: list[list[float]] | None, sx: float, sy: float) -> list[float] | None:
    """The camera matrix of frames scaled by (sx, sy), row-major (the intrinsics' convention: f and c scale)."""
    if k is None:
        return None
    m = np.asarray(k, dtype=np.float64).copy()
    m[0, :] *= sx
    m[1, :] *= sy
    return m.reshape(-1).tolist()


def _decode(path: Path, index, first: int, end: int) -> Iterator[tuple[int, np.ndarray]]:
    """(source frame index, RGB frame) for frames [first, end), decoding from the keyframe before `first`."""
    import av

    g0, _ = index.gop_range(first, end)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        c.seek(int(index.pts[g0]), stream=s, backward=True)
        for frame in c.decode(s):
            if frame.pts is None:
                continue
            i = int(np.searchsorted(index.pts, frame.pts))
            if i >= end:
                return
            if i >= first:
                yield i, frame.to_ndarray(format="rgb24")


def _window_for(times: np.ndarray, ts: np.ndarray, window_sec: float) -> np.ndarray:
    """Index of the window whose centre is nearest each time."""
    if len(ts) == 0:
        return np.zeros(len(times), dtype=np.int64)
    centres = ts + window_sec / 2
    i = np.clip(np.searchsorted(centres, times), 0, len(ts) - 1)
    j = np.clip(i - 1, 0, len(ts) - 1)
    return np.where(np.abs(centres[j] - times) <= np.abs(centres[i] - times), j, i)


class _PartWriter:
    """One part (data / episodes / video file index) of new episodes."""

    def __init__(self, stage: Path, part: int, options: ExportOptions, shape, template: Path, size: tuple[int, int],
                 fps: int):
        from egoclean.media.remux import RangeCopier
        from egoclean.media.video import VideoWriter

        self.part = part
        c, f = lerobot.chunk_file(part)
        self.video_rel = lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY, chunk_index=c, file_index=f)
        self.video_path = stage / self.video_rel
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = shape
        self.size = size
        self.fps = fps
        self.reencode = options.resolution is not None
        if self.reencode:
            self.writer = VideoWriter(self.video_path, fps, size[0], size[1], crf=options.crf, preset=options.preset)
        else:
            self.writer = RangeCopier(self.video_path, shape, template)
        self.closed = False
        self.episodes: list[dict] = []  # row dicts, with "_file_frame"
        self.frames: list[dict] = []  # per-episode column arrays

    @property
    def frames_written(self) -> int:
        return self.writer.n_frames if self.reencode else self.writer.frames

    def size_mb(self) -> float:
        return self.video_path.stat().st_size / 1e6 if self.video_path.exists() else 0.0

    def close(self) -> None:
        if not self.closed:
            self.writer.close()
            self.closed = True

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.reencode:
                with contextlib.suppress(Exception):
                    self.writer.__exit__(RuntimeError, None, None)
            else:
                self.writer.abort()


def loading_code(root: str | os.PathLike) -> str:
    """The Python lines that load the dataset at `root` with lerobot (the card, the demo and the UI show them)."""
    return ("from lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
            f"ds = LeRobotDataset('local/egoclean', root={str(root)!r})\n"
            f"frame = ds[0]  # frame[{VIDEO_KEY!r}]: (3, H, W) float in [0, 1]")


def dataset_card(root: str | os.PathLike) -> str:
    """The dataset card of the export at `root` without its YAML front matter (for display), "" when absent."""
    try:
        text = (Path(root) / CARD_PATH).read_text()
    except FileNotFoundError:
        return ""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        text = text[end + 5:] if end >= 0 else text
    return text.strip() + "\n"


def _card(meta: dict, info: dict) -> str:
    clips = meta.get("clips", {})
    kept = sum(c.get("kept_sec", 0) for c in clips.values())
    dropped = sum(c.get("dropped_sec", 0) for c in clips.values())
    random = any(c.get("random_weights") for c in clips.values())
    models = sorted({str(c.get("model")) for c in clips.values() if c.get("model")})
    skipped = meta.get("skipped", {})
    p = meta.get("params", {})
    lines = [
        "---",
        "license: apache-2.0",
        "task_categories:",
        "- robotics",
        "tags:",
        "- LeRobot",
        "- egocentric",
        "- Egocentric-10K",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
        "---",
        "",
        "# EgoClean export of Egocentric-10K work cycles",
        "",
        f"A [LeRobot](https://github.com/huggingface/lerobot) dataset, format {lerobot.CODEBASE_VERSION}, written by "
        "EgoClean. Each episode is a stretch of clean work from a head-mounted camera in a factory, "
        "cut at work-cycle boundaries.",
        "",
        "## Source and licence",
        "",
        f"Video from [{SOURCE_DATASET}](https://huggingface.co/datasets/{SOURCE_DATASET}), licence "
        f"{SOURCE_LICENCE}. The fisheye clips were rectified to a pinhole camera; each episode carries "
        "its camera matrix (`egoclean/camera_matrix`, row-major 3x3, for the exported image size).",
        "",
        "## What was removed and why",
        "",
        "- Anomalous / off-task spans found by EgoClean's V-JEPA 2 typicality detector, with a safety "
        f"margin of {p.get('margin_sec', '?')} s on each side.",
        f"- Pieces shorter than {p.get('min_episode_sec', '?')} s, and partial cycles at span ends "
        "(when a clip has a clear work-cycle period).",
        "- Clips that could not be exported: " + (", ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
                                                  if skipped else "none") + ".",
        "",
        "## Counts",
        "",
        "| clips | episodes | frames | hours kept | hours dropped |",
        "|---|---|---|---|---|",
        f"| {len(clips)} | {info['total_episodes']} | {info['total_frames']} | {kept / 3600:.3f} "
        f"| {dropped / 3600:.3f} |",
        "",
        "## Tasks",
        "",
        "The source has no language labels. The task strings are generated, one per factory "
        "(`meta/tasks.parquet`), and say only where the work happened, not what it is.",
        "",
        "## Features",
        "",
        f"- `{VIDEO_KEY}`: rectified RGB video at {info['fps']} fps.",
        f"- `{SCORE_KEY}`: the anomaly score (1 - typicality) of the embedding window nearest the frame.",
        "- episode columns `egoclean/*` in `meta/episodes/`: clip id, factory, worker, start/end in the source "
        "clip, cycle index and period, camera matrix and image size, model, `egoclean/random_weights`, and "
        "`egoclean/embedding`: the mean V-JEPA 2 embedding of the windows inside the episode.",
        "",
        "Model(s): " + (", ".join(models) or "unknown") + (
            " — **computed with random weights (a test model): the spans are not meaningful**" if random else ""),
        "",
        "## Loading",
        "",
        "```python",
        loading_code("<this directory>"),
        "```",
        "",
        "Without lerobot: `pandas.read_parquet('meta/episodes/chunk-000/file-000.parquet')` lists the "
        "episodes; an episode's frames are those of its video file between `videos/<key>/from_timestamp` and "
        "`to_timestamp`.",
        "",
    ]
    return "\n".join(lines)


class _Export:
    """One export run: the staging directory, the renumbered old episodes and the new parts."""

    def __init__(self, out: Path, existing: Existing, options: ExportOptions, clip_ids: list[str]):
        import pandas as pd

        self.out, self.options = out, options
        self.old = existing.episodes if existing.episodes is not None else pd.DataFrame()
        self.meta = existing.meta or {"format": "egoclean-lerobot", "version": FORMAT_VERSION, "clips": {},
                                      "skipped": {}}
        self.meta["resolution"] = options.resolution
        self.meta["params"] = options.params.to_dict()
        self.tasks = dict(existing.tasks)
        self.size: tuple[int, int] | None = None  # the dataset's video width, height
        self.fps: int | None = None
        if existing.info is not None:
            shape = existing.info["features"][VIDEO_KEY]["shape"]
            self.size, self.fps = (shape[1], shape[0]), int(existing.info["fps"])
        self.removing = set(clip_ids)
        # clips the dataset holds before this export: their episodes written now are not new ones
        self.held_before = set(self.old["egoclean/clip_id"]) if len(self.old) else set()
        for k in self.removing:
            self.meta["clips"].pop(k, None)
            self.meta["skipped"].pop(k, None)
        self.stage = out.with_name(f".{out.name}.export-{uuid.uuid4().hex[:8]}")
        self.kept = self.old
        self.removed = 0
        self.written: list[str] = []
        self.parts: list[_PartWriter] = []
        self.new_rows: list[dict] = []
        self.added_frames = 0
        self.kept_sec = self.dropped_sec = 0.0
        self.bytes_video = 0
        self.next_part = 0
        self.base_episode = self.base_frame = 0

    # -- the episodes already there

    def renumber_old(self) -> None:
        """Drop the re-exported clips' episodes, renumber the rest, rewrite only the parquet files that changed."""
        import pandas as pd

        if not len(self.old):
            return
        old = self.old
        keep = ~old["egoclean/clip_id"].isin(self.removing)
        kept = old[keep].reset_index(drop=True).copy()
        self.removed = int((~keep).sum())
        part = [lerobot.part_of(c, f) for c, f in zip(old["data/chunk_index"], old["data/file_index"])]
        kept_part = [p for p, k in zip(part, keep) if k]
        new_from = np.concatenate([[0], np.cumsum(kept["length"].astype(int))])
        renumber = {int(e): (i, int(new_from[i])) for i, e in enumerate(kept["episode_index"])}
        old_from = dict(zip(kept["episode_index"].astype(int), kept["dataset_from_index"].astype(int)))
        changed = {p for p, (e, f) in zip(kept_part, renumber.items()) if (e, old_from[e]) != f}
        for p in sorted(set(part) - set(kept_part)):  # parts left without episodes go entirely
            for rel in self._part_files(p):
                with contextlib.suppress(FileNotFoundError):
                    (self.stage / rel).unlink()
        for p in sorted(changed):
            rel = self._part_files(p)[0]
            df = pd.read_parquet(self.out / rel)
            df = df[df["episode_index"].isin(list(renumber))].copy()
            e_old = df["episode_index"].astype(int)
            df["index"] = [renumber[e][1] + int(i) - old_from[e] for e, i in zip(e_old, df["index"])]
            df["episode_index"] = [renumber[e][0] for e in e_old]
            self._parquet(rel, _table(df))
        kept["episode_index"] = np.arange(len(kept))
        kept["dataset_from_index"] = new_from[:-1]
        kept["dataset_to_index"] = new_from[1:]
        for p in sorted(changed):
            rows = kept[[q == p for q in kept_part]]
            self._parquet(self._part_files(p)[1], _episodes_table(rows))
        self.kept = kept
        self.next_part = max(part) + 1
        self.base_episode, self.base_frame = len(kept), int(new_from[-1])

    @staticmethod
    def _part_files(part: int) -> tuple[str, str, str]:
        c, f = lerobot.chunk_file(part)
        return (lerobot.DATA_PATH.format(chunk_index=c, file_index=f),
                lerobot.EPISODES_PATH.format(chunk_index=c, file_index=f),
                lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY, chunk_index=c, file_index=f))

    def _parquet(self, rel: str, table) -> None:
        _write_parquet(self.stage / rel, table)
        self.written.append(rel)

    # -- new episodes

    def skip(self, ci: ClipInput, why: str) -> None:
        self.meta["skipped"][ci.clip_id] = why
        self.meta["clips"].pop(ci.clip_id, None)

    def why_not(self, ci: ClipInput) -> str | None:
        """Why a clip cannot join this dataset (None: it can)."""
        if ci.problem:
            return ci.problem
        if ci.fps <= 0 or abs(ci.fps - round(ci.fps)) > 1e-6:
            return f"frame rate {ci.fps:g} is not a whole number (LeRobot v3.0 needs an int fps)"
        if self.fps is not None and round(ci.fps) != self.fps:
            return f"frame rate {ci.fps:g} differs from the dataset's {self.fps}"
        size = _target_size(ci, self.options.resolution)
        if self.size is not None and size != self.size:
            return (f"image size {size[0]}x{size[1]} differs from the dataset's {self.size[0]}x{self.size[1]} "
                    "(export with --resolution)")
        return None

    def add_clip(self, ci: ClipInput) -> None:
        from egoclean.media.remux import index_packets

        why = self.why_not(ci)
        if why:
            self.skip(ci, why)
            return
        plan = ci.plan(self.options.params)
        if not plan.episodes:
            self.skip(ci, "; ".join(sorted({s.reason for s in plan.skipped})) or "no episodes")
            return
        index = index_packets(ci.video)
        self.size, self.fps = _target_size(ci, self.options.resolution), round(ci.fps)
        part = self._part_for(index.shape, ci.video)
        task = task_for(ci.cid.factory_dir)
        self.tasks.setdefault(task, len(self.tasks))
        emb = np.load(ci.emb_path, mmap_mode="r") if ci.emb_path is not None else None
        n_eps = 0
        for k in sorted({ep.span_index for ep in plan.episodes}):
            eps = [(ep, ep.frames(ci.fps)) for ep in plan.episodes if ep.span_index == k]
            eps = [(ep, (a, min(b, index.n_frames))) for ep, (a, b) in eps if min(b, index.n_frames) - a >= 2]
            if not eps:
                continue
            images, file_first = self._write_span(part, ci, index, eps)
            for (ep, (a, b)), ff, imgs in zip(eps, file_first, images):
                row = self._episode(ci, plan, ep, a, b, ff, imgs, task, emb, part)
                part.episodes.append(row)
                self.new_rows.append(row)
                n_eps += 1
        exported = sum(r["length"] for r in self.new_rows if r["egoclean/clip_id"] == ci.clip_id) / ci.fps
        dropped = max(0.0, ci.duration_sec - exported)
        self.kept_sec += exported
        self.dropped_sec += dropped
        cycle = plan.cycle
        self.meta["clips"][ci.clip_id] = {
            "episodes": n_eps, "kept_sec": round(exported, 3), "dropped_sec": round(dropped, 3),
            "cycle": None if cycle is None else {"period_sec": cycle.period_sec, "phase_sec": cycle.phase_sec,
                                                 "strength": cycle.strength},
            "skipped_spans": [{"start_sec": s.start_sec, "end_sec": s.end_sec, "reason": s.reason}
                              for s in plan.skipped],
            "model": ci.model, "random_weights": ci.random_weights,
            "materialized_at": ci.materialized_at, "params": self.options.params.to_dict(),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _part_for(self, shape, template: Path) -> _PartWriter:
        """The open part if this clip's video can join it, else a new one."""
        cur = self.parts[-1] if self.parts and not self.parts[-1].closed else None
        if cur is not None and ((not cur.reencode and not cur.writer.compatible(shape))
                                or cur.size_mb() >= lerobot.VIDEO_FILES_SIZE_IN_MB):
            cur.close()
            cur = None
        if cur is None:
            cur = _PartWriter(self.stage, self.next_part, self.options, shape, template, self.size, self.fps)
            self.parts.append(cur)
            self.next_part += 1
        return cur

    def _write_span(self, part: _PartWriter, ci: ClipInput, index, eps: list) -> tuple[list[list], list[int]]:
        """Write one clean span's episodes into the part's video; returns their sampled
        images (for the statistics) and the file frame index of each episode's first frame."""
        samples = {a + s: j for j, (_, (a, b)) in enumerate(eps) for s in lerobot.sample_indices(b - a)}
        images: list[list] = [[] for _ in eps]
        a0, b0 = eps[0][1][0], eps[-1][1][1]
        if part.reencode:
            import cv2  # imported here: only the re-encode path scales frames

            starts = {a: j for j, (_, (a, _b)) in enumerate(eps)}
            file_first = [0] * len(eps)
            for i, rgb in _decode(ci.video, index, a0, b0):
                if not any(a <= i < b for _, (a, b) in eps):
                    continue
                if i in starts:
                    file_first[starts[i]] = part.writer.n_frames
                if self.size != (ci.width, ci.height):
                    rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
                part.writer.write(rgb, fmt="rgb24")
                if i in samples:
                    images[samples[i]].append(lerobot.downsample(rgb.transpose(2, 0, 1)))
            return images, file_first
        first, _ = part.writer.add(ci.video, index, a0, b0)
        for i, rgb in _decode(ci.video, index, min(samples), max(samples) + 1):
            if i in samples:
                images[samples[i]].append(lerobot.downsample(rgb.transpose(2, 0, 1)))
        return images, [first + (a - a0) for _, (a, _b) in eps]

    def _episode(self, ci: ClipInput, plan: EpisodePlan, ep, a: int, b: int, file_first: int, images: list,
                 task: str, emb, part: _PartWriter) -> dict:
        """One new episode: its frame columns (kept in the part) and its episode row."""
        n = b - a
        e_idx = self.base_episode + len(self.new_rows)
        g_from = self.base_frame + self.added_frames
        times = np.arange(a, b) / ci.fps
        score = (ci.window_scores[_window_for(times, ci.window_ts, ci.window_sec)].astype(np.float32)
                 if len(ci.window_ts) else np.full(n, np.nan, dtype=np.float32))
        cols = {
            "timestamp": (np.arange(n) / self.fps).astype(np.float32),
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, e_idx, dtype=np.int64),
            "index": np.arange(g_from, g_from + n, dtype=np.int64),
            "task_index": np.full(n, self.tasks[task], dtype=np.int64),
            SCORE_KEY: score,
        }
        part.frames.append(cols)
        self.added_frames += n
        stats = {k: lerobot.feature_stats(v) for k, v in cols.items()}
        stats[VIDEO_KEY] = lerobot.feature_stats(np.stack(images), image=True)
        cid = ci.cid
        row = {
            "episode_index": e_idx, "tasks": [task], "length": n,
            "dataset_from_index": g_from, "dataset_to_index": g_from + n, "_file_frame": file_first,
            "egoclean/clip_id": cid.key, "egoclean/factory": cid.factory_dir, "egoclean/worker": cid.worker_dir,
            "egoclean/start_sec": a / ci.fps, "egoclean/end_sec": b / ci.fps, "egoclean/start_frame": a,
            "egoclean/cycle_index": ep.cycle_index, "egoclean/n_cycles": ep.n_cycles,
            "egoclean/period_sec": plan.cycle.period_sec if plan.cycle else float("nan"),
            "egoclean/camera_matrix": _scaled_k(ci.camera_matrix, self.size[0] / ci.width, self.size[1] / ci.height)
            or [float("nan")] * 9,
            "egoclean/image_width": self.size[0], "egoclean/image_height": self.size[1],
            "egoclean/model": ci.model or "", "egoclean/random_weights": bool(ci.random_weights),
            "egoclean/embedding": _episode_embedding(emb, ci, ep.start_sec, ep.end_sec),
        }
        for f, s in stats.items():
            row |= lerobot.stats_columns(f, s)
        return row

    # -- closing

    def finish_parts(self) -> None:
        """Close the new parts; read their frame times back; write their data and episode files."""
        import pandas as pd

        from egoclean.media.remux import frame_times

        for pw in self.parts:
            pw.close()
            ft = frame_times(pw.video_path)
            self.bytes_video += pw.video_path.stat().st_size
            c, f = lerobot.chunk_file(pw.part)
            for row in pw.episodes:
                t0 = float(ft[row.pop("_file_frame")])
                row |= {
                    "data/chunk_index": c, "data/file_index": f,
                    f"videos/{VIDEO_KEY}/chunk_index": c, f"videos/{VIDEO_KEY}/file_index": f,
                    f"videos/{VIDEO_KEY}/from_timestamp": t0,
                    f"videos/{VIDEO_KEY}/to_timestamp": t0 + row["length"] / pw.fps,
                    "meta/episodes/chunk_index": c, "meta/episodes/file_index": f,
                }
            data_rel, eps_rel, video_rel = self._part_files(pw.part)
            self._parquet(data_rel, _table({k: np.concatenate([fr[k] for fr in pw.frames]) for k in pw.frames[0]}))
            self._parquet(eps_rel, _episodes_table(pd.DataFrame(pw.episodes)))
            self.written.append(video_rel)

    def write_meta(self) -> dict:
        """info.json, stats.json, tasks.parquet, egoclean.json and the dataset card; returns info."""
        import pandas as pd

        from egoclean.media.remux import index_packets

        new = pd.DataFrame(self.new_rows)
        everything = pd.concat([self.kept, new], ignore_index=True) if len(self.kept) else new
        if len(everything) == 0:
            skipped = "; ".join(f"{k}: {v}" for k, v in sorted(self.meta["skipped"].items()))
            raise InvalidInputError(f"export: no episodes to write ({skipped or 'no clips selected'})")
        features = dict(lerobot.DEFAULT_FEATURES)
        features[SCORE_KEY] = {"dtype": "float32", "shape": [1], "names": None}
        video = index_packets(next(iter(sorted(self.stage.glob(f"videos/{VIDEO_KEY}/*/*.mp4")))))
        features[VIDEO_KEY] = lerobot.video_feature(self.size[1], self.size[0], self.fps, video.shape.codec,
                                                     video.shape.pix_fmt)
        info = lerobot.info_json(self.fps, features, len(everything), int(everything["length"].sum()), len(self.tasks))
        rows = everything.to_dict("records")
        stats = {f: lerobot.aggregate([lerobot.stats_from_row(r, f) for r in rows]) for f in features}
        for rel in (lerobot.INFO_PATH, lerobot.STATS_PATH, lerobot.TASKS_PATH, META_PATH, CARD_PATH):
            with contextlib.suppress(FileNotFoundError):
                (self.stage / rel).unlink()  # hard links to the previous version: replaced, not written through
        atomic.write_json(self.stage / lerobot.INFO_PATH, info)
        atomic.write_json(self.stage / lerobot.STATS_PATH, lerobot.json_stats(stats))
        tasks = pd.DataFrame({"task_index": list(self.tasks.values())}, index=pd.Index(list(self.tasks), name="task"))
        with atomic.atomic_path(self.stage / lerobot.TASKS_PATH) as tmp:
            tasks.to_parquet(tmp)
        self.meta["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic.write_json(self.stage / META_PATH, self.meta)
        atomic.write_bytes(self.stage / CARD_PATH, _card(self.meta, info).encode())
        return info


def _table(columns):
    """A pyarrow table of frame columns (a dict of arrays, or a DataFrame)."""
    import pyarrow as pa

    if isinstance(columns, dict):
        return pa.table(columns)
    return pa.Table.from_pandas(columns.reset_index(drop=True), preserve_index=False)


def _episode_embedding(emb, ci: ClipInput, start: float, end: float) -> list[float]:
    """Mean embedding of the windows inside [start, end] (or overlapping it when none fits); [] without any."""
    if emb is None or len(ci.window_ts) != len(emb):
        return []
    ts, w = ci.window_ts, ci.window_sec
    inside = (ts >= start - 1e-6) & (ts + w <= end + 1e-6)
    if not inside.any():
        inside = (ts < end) & (ts + w > start)
    if not inside.any():
        return []
    return np.asarray(emb[np.flatnonzero(inside)], dtype=np.float64).mean(axis=0).astype(np.float32).tolist()


def export_dataset(out: str | os.PathLike, clips: Sequence[ClipInput], options: ExportOptions | None = None,
                   progress: bool = False) -> ExportReport:
    """Write (or extend) the dataset at `out` with the episodes of `clips` (see the module docstring)."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    options = options or ExportOptions()
    options.params.validate()
    if options.resolution is not None and (not isinstance(options.resolution, int) or options.resolution < 16):
        raise InvalidInputError(f"export resolution {options.resolution!r}: must be an integer height >= 16")
    if "://" in str(out):
        raise InvalidInputError(f"export output {out}: only local directories are supported")
    out = Path(out).absolute()
    clip_ids = [c.clip_id for c in clips]
    if len(set(clip_ids)) != len(clip_ids):
        raise InvalidInputError("export: a clip is selected twice")
    existing = open_existing(out)
    if existing.meta and existing.meta.get("resolution") != options.resolution:
        raise InvalidInputError(
            f"export output {out}: was exported with resolution {existing.meta.get('resolution')}, "
            f"not {options.resolution}; use the same setting or a new directory"
        )
    unchanged = []
    if options.only_changed and existing.meta:
        done = existing.meta.get("clips", {})
        params = options.params.to_dict()
        unchanged = [c.clip_id for c in clips if c.materialized_at is not None and not c.problem
                     and done.get(c.clip_id, {}).get("materialized_at") == c.materialized_at
                     and done.get(c.clip_id, {}).get("params") == params]
        clips = [c for c in clips if c.clip_id not in unchanged]
        clip_ids = [c.clip_id for c in clips]
    run = _Export(out, existing, options, clip_ids)
    run.stage.mkdir(parents=True)
    try:
        if existing.info is not None:
            _link_tree(out, run.stage)
        run.renumber_old()
        with tqdm(total=len(clips), unit="clip", desc="export", disable=not progress) as bar:
            for ci in clips:
                bar.set_postfix_str(ci.clip_id)
                with _localized(ci) as local:
                    run.add_clip(local)
                bar.update(1)
        run.finish_parts()
        info = run.write_meta()
        if options.check:
            problems = lerobot.validate(run.stage)
            if problems:
                raise InvalidInputError(f"export: the assembled dataset is inconsistent, not published: {problems[:3]}")
        _swap(run.stage, out)
    except BaseException:
        for pw in run.parts:
            pw.abort()
        shutil.rmtree(run.stage, ignore_errors=True)
        raise
    return ExportReport(
        out=out, clips=[c for c in clip_ids if c in run.meta["clips"]], episodes_added=len(run.new_rows),
        episodes_removed=run.removed, frames_added=run.added_frames, total_episodes=info["total_episodes"],
        total_frames=info["total_frames"], kept_sec=run.kept_sec, dropped_sec=run.dropped_sec,
        skipped={k: v for k, v in run.meta["skipped"].items() if k in run.removing}, bytes_video=run.bytes_video,
        seconds=time.perf_counter() - t_start, files_written=run.written, unchanged=unchanged,
        episodes_new=sum(r["egoclean/clip_id"] not in run.held_before for r in run.new_rows),
    )


def verify_frames(root: str | os.PathLike, sources: dict[str, str | os.PathLike], samples: int = 8,
                  seed: int = 0, min_psnr: float = 30.0) -> dict:
    """Compare sampled episode frames with the rectified clips they came from.

    `sources` maps clip id -> rectified video. Frames are read from the dataset at
    from_timestamp + k / fps (as a LeRobot reader does) and from the source at the
    episode's start_frame + k. A stream-copied dataset must match bit for bit; a
    re-encoded one (another size) must reach `min_psnr` dB against the source frame
    scaled the same way. Returns {"checked", "mismatches": [...], "min_psnr"}.
    """
    import av
    import cv2

    root = Path(root)
    info = lerobot.read_info(root)
    fps = int(info["fps"])
    eps = lerobot.read_table(root, "meta/episodes")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(eps), size=min(samples, len(eps)), replace=False) if len(eps) else []
    mismatches, checked, worst = [], 0, float("inf")
    tmp = tempfile.TemporaryDirectory(prefix="egoclean-verify-")
    fetched: dict[str, Path | None] = {}
    for e in sorted(int(x) for x in picks):
        row = eps.iloc[e]
        clip = str(row["egoclean/clip_id"])
        src = sources.get(clip)
        if src is not None and _local(str(src)) is None:  # a remote data root: a local copy, once per clip
            src = fetched.get(clip) or fetched.setdefault(clip, _fetch(str(src), Path(tmp.name)))
        if src is None or not Path(src).is_file():
            mismatches.append(f"episode {e}: source video of {clip} not available")
            continue
        k = int(rng.integers(0, int(row["length"])))
        video = root / lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY,
                                                 chunk_index=int(row[f"videos/{VIDEO_KEY}/chunk_index"]),
                                                 file_index=int(row[f"videos/{VIDEO_KEY}/file_index"]))
        t = float(row[f"videos/{VIDEO_KEY}/from_timestamp"]) + k / fps
        got = None
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            c.seek(int(t / s.time_base), stream=s, backward=True)
            for f in c.decode(s):
                ft = float(f.pts * s.time_base)
                if abs(ft - t) < lerobot.TOLERANCE_S:
                    got = f.to_ndarray(format="rgb24")
                    break
                if ft > t:
                    break
        if got is None:
            mismatches.append(f"episode {e}: no frame at {t:.4f} s in {video.name}")
            continue
        want_i = int(row["egoclean/start_frame"]) + k
        want = None
        from egoclean.media.remux import index_packets

        idx = index_packets(src)
        for _, rgb in _decode(Path(src), idx, want_i, want_i + 1):
            want = rgb
        if want is None:
            mismatches.append(f"episode {e}: source {clip} has no frame {want_i}")
            continue
        checked += 1
        if got.shape != want.shape:
            want = cv2.resize(want, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
            mse = float(np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2))
            psnr = float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)
            worst = min(worst, psnr)
            if psnr < min_psnr:
                mismatches.append(f"episode {e} frame {k}: {psnr:.1f} dB against the scaled source (< {min_psnr})")
        elif not np.array_equal(got, want):
            mismatches.append(f"episode {e} frame {k}: differs from {clip} frame {want_i}")
    tmp.cleanup()
    return {"checked": checked, "mismatches": mismatches, "min_psnr": None if worst == float("inf") else worst}


def _fetch(url: str, into: Path) -> Path | None:
    """A local copy of a file at an fsspec URL (None when it is not there)."""
    import fsspec  # imported here: only remote data roots need it

    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return None
    dest = into / f"{len(list(into.iterdir()))}-{path.rsplit('/', 1)[-1]}"
    fs.get_file(path, str(dest))
    return dest


def _swap(stage: Path, out: Path) -> None:
    """Publish `stage` as `out`: two renames; the previous version is removed afterwards."""
    prev = out.with_name(f".{out.name}{PREVIOUS_SUFFIX}")
    if prev.exists():
        shutil.rmtree(prev)
    if out.exists():
        os.rename(out, prev)
    os.rename(stage, out)
    shutil.rmtree(prev, ignore_errors=True)


def export_from_store(store, out: str | os.PathLike, *, sql: str | None = None, clips: Sequence[str] | None = None,
                      options: ExportOptions | None = None, progress: bool = False) -> ExportReport:
    """`select_clips` then `export_dataset`: what `egoclean export` and the Dagster export asset run."""
    return export_dataset(out, select_clips(store, sql=sql, clips=clips), options, progress=progress)
