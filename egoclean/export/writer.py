"""Write clips' episodes into a LeRobot v3.0 dataset directory and publish it atomically.

`export_dataset` plans each clip's episodes (`egoclean.export.episodes`), writes them
into a staging copy of the dataset directory (`egoclean.export.directory`) and publishes
it:

- **No re-encode by default.** Episodes are time ranges of video files: the rectified
  H.264 is copied packet for packet (`egoclean.media.remux`), one run of whole groups of
  pictures per clean work span, many spans per file. `resolution=N` re-encodes instead
  (frames scaled to height N, width keeping the aspect ratio, camera matrix scaled with
  them) and writes only the episodes' own frames.
- **Append, replace.** Exporting clips that are not in the dataset appends new files;
  nothing already there is rewritten. Exporting a clip that is already there replaces
  its episodes: its old rows go, the episode and frame indices after them are
  renumbered (only those parquet files are rewritten; video files are kept, ranges no
  episode uses any more stay as unused bytes until a file loses all its episodes and
  is deleted).
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
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from egoclean.core import atomic
from egoclean.core.errors import InvalidInputError
from egoclean.embed.embeddings import load_npy
from egoclean.export import directory, lerobot
from egoclean.export.card import card
from egoclean.export.directory import (
    ACTION_KEY, CARD_PATH, FORMAT_VERSION, META_PATH, SCORE_KEY, STATE_KEY, VIDEO_KEY, Existing,
)
from egoclean.export.episodes import EpisodeParams, EpisodePlan, split_at_gaps
from egoclean.export.selection import ClipInput, localized, select_clips

DEFAULT_REENCODE_CRF = 23
DEFAULT_REENCODE_PRESET = "veryfast"


def task_for(factory: str) -> str:
    """The task string of a factory's work (the source has no language labels)."""
    return f"repetitive manual work at a {factory} workstation"



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
    # exported clips not cut at work cycles because their analysis could not be read: clip -> why
    no_cycle_cuts: dict[str, str] = field(default_factory=dict)
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
                + (f"; {len(self.unchanged)} unchanged clip(s) left as they were" if self.unchanged else "")
                + (f"; {len(self.no_cycle_cuts)} clip(s) without cycle cuts" if self.no_cycle_cuts else ""))


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



def _window_for(times: np.ndarray, ts: np.ndarray, window_sec: float) -> np.ndarray:
    """Index of the window whose centre is nearest each time."""
    if len(ts) == 0:
        return np.zeros(len(times), dtype=np.int64)
    centres = ts + window_sec / 2
    i = np.clip(np.searchsorted(centres, times), 0, len(ts) - 1)
    j = np.clip(i - 1, 0, len(ts) - 1)
    return np.where(np.abs(centres[j] - times) <= np.abs(centres[i] - times), j, i)



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
        self.stage = directory.staging_dir(out, uuid.uuid4().hex[:8])
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
        self.poses = False  # episodes carry observation.state and action (set by export_dataset)

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
            for rel in directory.part_files(p):
                with contextlib.suppress(FileNotFoundError):
                    (self.stage / rel).unlink()
        for p in sorted(changed):
            rel = directory.part_files(p)[0]
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
            self._parquet(directory.part_files(p)[1], _episodes_table(rows))
        self.kept = kept
        self.next_part = max(part) + 1
        self.base_episode, self.base_frame = len(kept), int(new_from[-1])

    def _parquet(self, rel: str, table) -> None:
        directory.write_parquet(self.stage / rel, table)
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
        traj = None
        if self.poses:
            if ci.trajectory is None:
                self.skip(ci, "no camera trajectory (materialize camera_trajectory; this dataset has "
                              f"{STATE_KEY} and {ACTION_KEY})")
                return
            from egoclean.motion.trajectory import Trajectory  # at use: the camera motion stage

            traj = Trajectory.load_parquet(ci.trajectory)
        index = index_packets(ci.video)
        recorded = round(ci.duration_sec * ci.fps)
        if recorded > 0 and index.n_frames < recorded - 1:
            self.skip(ci, f"rectified video {ci.video} has {index.n_frames} frames, the store records {recorded} "
                          f"({ci.duration_sec:g} s at {ci.fps:g} fps): it is incomplete or another file; "
                          "re-materialize rectified_clip")
            return
        try:
            emb = load_npy(ci.emb_path, "r") if ci.emb_path is not None else None
        except InvalidInputError as e:
            self.skip(ci, str(e))
            return
        if traj is not None and len(traj) != index.n_frames:
            self.skip(ci, f"camera trajectory has {len(traj)} frames, the video {index.n_frames}")
            return
        gaps: list[dict] = []
        self.size, self.fps = _target_size(ci, self.options.resolution), round(ci.fps)
        part = self._part_for(index.shape, ci.video)
        task = task_for(ci.cid.factory_dir)
        self.tasks.setdefault(task, len(self.tasks))
        n_eps = 0
        for k in sorted({ep.span_index for ep in plan.episodes}):
            eps = [(ep, ep.frames(ci.fps)) for ep in plan.episodes if ep.span_index == k]
            eps = [(ep, (a, min(b, index.n_frames))) for ep, (a, b) in eps if min(b, index.n_frames) - a >= 2]
            if traj is not None:
                eps, dropped = split_at_gaps(traj, eps, ci.fps)
                gaps += dropped
            if not eps:
                continue
            images, file_first = self._write_span(part, ci, index, eps)
            for (ep, (a, b)), ff, imgs in zip(eps, file_first, images):
                row = self._episode(ci, plan, ep, a, b, ff, imgs, task, emb, part, traj)
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
                              for s in plan.skipped] + gaps,
            "model": ci.model, "random_weights": ci.random_weights,
            **({"no_cycle_cuts": ci.no_cycles} if ci.no_cycles and self.options.params.split_cycles else {}),
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
        from egoclean.media.remux import decode_range

        samples = {a + s: j for j, (_, (a, b)) in enumerate(eps) for s in lerobot.sample_indices(b - a)}
        images: list[list] = [[] for _ in eps]
        a0, b0 = eps[0][1][0], eps[-1][1][1]
        if part.reencode:
            import cv2  # imported here: only the re-encode path scales frames

            starts = {a: j for j, (_, (a, _b)) in enumerate(eps)}
            file_first = [0] * len(eps)
            for i, rgb in decode_range(ci.video, index, a0, b0):
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
        for i, rgb in decode_range(ci.video, index, min(samples), max(samples) + 1):
            if i in samples:
                images[samples[i]].append(lerobot.downsample(rgb.transpose(2, 0, 1)))
        return images, [first + (a - a0) for _, (a, _b) in eps]

    def _episode(self, ci: ClipInput, plan: EpisodePlan, ep, a: int, b: int, file_first: int, images: list,
                 task: str, emb, part: _PartWriter, traj=None) -> dict:
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
        metric = None
        if traj is not None:
            from egoclean.motion.episodes import state_action  # at use: the camera motion stage

            cols[STATE_KEY], cols[ACTION_KEY], metric = state_action(traj, a, b)
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
        if traj is not None:
            row["egoclean/metric"] = bool(metric)  # state and action in metres (else the clip's own unit)
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
            data_rel, eps_rel, video_rel = directory.part_files(pw.part)
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
        if self.poses:
            features |= pose_features()
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
        atomic.write_bytes(self.stage / CARD_PATH, card(self.meta, info).encode())
        return info


def pose_features() -> dict:
    """info.json's entries of the camera state and action: dtype, shape, names and units."""
    from egoclean.motion.episodes import ACTION_NAMES, ACTION_UNITS, STATE_NAMES, STATE_UNITS

    note = "length: metres where the episode's egoclean/metric is true, else the clip's own unit"
    return {
        STATE_KEY: {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": STATE_NAMES,
                    "egoclean/units": STATE_UNITS, "egoclean/description":
                    "camera pose relative to the episode's first frame (OpenCV camera axes); " + note},
        ACTION_KEY: {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": ACTION_NAMES,
                     "egoclean/units": ACTION_UNITS, "egoclean/description":
                     "camera motion to the next frame in the current camera axes, rotation vector; " + note},
    }


def _table(columns):
    """A pyarrow table of frame columns (a dict of arrays, or a DataFrame); (n, d) arrays as fixed-size lists."""
    import pyarrow as pa

    if isinstance(columns, dict):
        return pa.table({k: pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(v).ravel()), v.shape[1])
                         if np.ndim(v) == 2 else v for k, v in columns.items()})
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
    """Write (or extend) the dataset at `out` with the episodes of `clips` (see the module docstring).

    One export at a time per dataset (a second waits for the first, then adds to it); a symbolic
    link as `out` is followed, and staging folders of killed exports are removed."""
    t_start = time.perf_counter()
    options = options or ExportOptions()
    if options.resolution is not None and (not isinstance(options.resolution, int) or options.resolution < 16):
        raise InvalidInputError(f"export resolution {options.resolution!r}: must be an integer height >= 16")
    if "://" in str(out):
        raise InvalidInputError(f"export output {out}: only local directories are supported")
    out = directory.resolve_output(out)
    clip_ids = [c.clip_id for c in clips]
    if len(set(clip_ids)) != len(clip_ids):
        raise InvalidInputError("export: a clip is selected twice")
    with directory.exclusive(out):
        directory.remove_stale_stages(out)
        return _export_locked(out, clips, options, progress, t_start)


def _export_locked(out: Path, clips: Sequence[ClipInput], options: ExportOptions, progress: bool,
                   t_start: float) -> ExportReport:
    """export_dataset's work, under the dataset's lock."""
    from tqdm.auto import tqdm

    clip_ids = [c.clip_id for c in clips]
    existing = directory.open_existing(out)
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
    # The camera state and action: what the dataset already has, else when every clip to export was tracked.
    if existing.info is not None:
        run.poses = STATE_KEY in existing.info["features"]
    else:
        usable = [c for c in clips if not c.problem]
        run.poses = bool(usable) and all(c.trajectory is not None or "trajectory" in (c.remote or {}) for c in usable)
    run.stage.mkdir(parents=True)
    try:
        if existing.info is not None:
            directory.link_tree(out, run.stage)
        run.renumber_old()
        with tqdm(total=len(clips), unit="clip", desc="export", disable=not progress) as bar:
            for ci in clips:
                bar.set_postfix_str(ci.clip_id)
                with localized(ci) as local:
                    run.add_clip(local)
                bar.update(1)
        run.finish_parts()
        info = run.write_meta()
        if options.check:
            problems = lerobot.validate(run.stage)
            if problems:
                raise InvalidInputError(f"export: the assembled dataset is inconsistent, not published: {problems[:3]}")
        directory.swap(run.stage, out)
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
        no_cycle_cuts={k: m["no_cycle_cuts"] for k, m in run.meta["clips"].items()
                       if k in run.removing and "no_cycle_cuts" in m},
    )



def export_from_store(store, out: str | os.PathLike, *, sql: str | None = None, clips: Sequence[str] | None = None,
                      options: ExportOptions | None = None, progress: bool = False) -> ExportReport:
    """`select_clips` then `export_dataset`: what `egoclean export` and the Dagster export asset run."""
    return export_dataset(out, select_clips(store, sql=sql, clips=clips), options, progress=progress)
