"""The LeRobot dataset format v3.0: its paths, metadata, statistics, and a validator.

Written from lerobot's own source (huggingface/lerobot, read at commit 7427f31, Aug
2026) without depending on it; each fact below names the file that defines it:

- `src/lerobot/datasets/utils.py`: `INFO_PATH` `meta/info.json`, `STATS_PATH`
  `meta/stats.json`, `DEFAULT_TASKS_PATH` `meta/tasks.parquet`, `DEFAULT_EPISODES_PATH`
  `meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet`,
  `DEFAULT_DATA_PATH` `data/chunk-.../file-....parquet`, `DEFAULT_VIDEO_PATH`
  `videos/{video_key}/chunk-.../file-....mp4`, `DEFAULT_CHUNK_SIZE` 1000 files per chunk,
  file size limits (100 MB data, 200 MB video) and `DatasetInfo`: the keys of
  `info.json` (codebase_version, fps as an int, features, total_episodes,
  total_frames, total_tasks, chunks_size, data_files_size_in_mb,
  video_files_size_in_mb, data_path, video_path, robot_type, splits).
- `src/lerobot/utils/constants.py`: `DEFAULT_FEATURES`, the per-frame columns every
  dataset has: timestamp (float32), frame_index, episode_index, index, task_index (int64),
  each of shape (1,).
- `src/lerobot/datasets/feature_utils.py` (`get_hf_features_from_features`): a feature of
  shape (1,) is a scalar parquet column; video features have no column (frames live in
  the MP4 files).
- `src/lerobot/datasets/video_utils.py` (`get_video_info`): a video feature's `info`
  holds video.height, video.width, video.codec, video.pix_fmt, video.fps (int),
  video.channels, has_audio.
- `src/lerobot/datasets/dataset_writer.py` (`_save_episode_data`, `_save_episode_video`)
  and `dataset_metadata.py` (`save_episode`, `_save_episode_metadata`): the episode rows:
  episode_index, tasks (list of strings), length, data/chunk_index, data/file_index,
  dataset_from_index, dataset_to_index, videos/<key>/chunk_index, videos/<key>/file_index,
  videos/<key>/from_timestamp, videos/<key>/to_timestamp (the episode's seconds in its
  video file), meta/episodes/chunk_index, meta/episodes/file_index, and the episode's
  statistics flattened as stats/<feature>/<stat>; splits `{"train": "0:N"}`.
- `src/lerobot/datasets/compute_stats.py`: statistics per feature min, max, mean, std,
  count and the quantiles q01, q10, q50, q90, q99 (`DEFAULT_QUANTILES`); images and
  videos per channel over sampled frames (`sample_indices`, `auto_downsample_height_width`),
  scaled to [0, 1], shape (3, 1, 1); `aggregate_feature_stats` combines episodes (count-
  weighted mean, parallel variance, min of lower and max of upper quantiles).
- `src/lerobot/datasets/io_utils.py`: `meta/tasks.parquet` is a table indexed by `task`
  with a `task_index` column; data and episode files are read in sorted path order
  and concatenated (`load_nested_dataset`), so their order is the episode order.
- `src/lerobot/datasets/dataset_reader.py`: a frame's image is the video frame at
  from_timestamp + timestamp, within `tolerance_s` (1e-4 s, lerobot_dataset.py).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
TOLERANCE_S = 1e-4
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count") + QUANTILE_KEYS

# The per-frame columns every v3.0 dataset has (lerobot/utils/constants.py DEFAULT_FEATURES).
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
             "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path",
             "robot_type", "splits")
EPISODE_KEYS = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index")
VIDEO_EPISODE_KEYS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")


def chunk_file(part: int, chunks_size: int = CHUNKS_SIZE) -> tuple[int, int]:
    """(chunk_index, file_index) of the part-th file of a kind (chunks hold `chunks_size` files)."""
    return part // chunks_size, part % chunks_size


def part_of(chunk_index: int, file_index: int, chunks_size: int = CHUNKS_SIZE) -> int:
    return int(chunk_index) * chunks_size + int(file_index)


def video_feature(height: int, width: int, fps: int, codec: str, pix_fmt: str) -> dict:
    """A video feature's entry in info.json (video_utils.get_video_info's keys)."""
    return {
        "dtype": "video",
        "shape": [int(height), int(width), 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": int(height),
            "video.width": int(width),
            "video.codec": codec,
            "video.pix_fmt": pix_fmt,
            "is_depth_map": False,
            "video.fps": int(fps),
            "video.channels": 3,
            "has_audio": False,
        },
    }


def info_json(fps: int, features: dict, total_episodes: int, total_frames: int, total_tasks: int,
              robot_type: str | None = None) -> dict:
    """meta/info.json for a dataset of these totals (DatasetInfo's fields)."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": int(total_episodes),
        "total_frames": int(total_frames),
        "total_tasks": int(total_tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": int(fps),
        "splits": {"train": f"0:{int(total_episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }


# ----------------------------------------------------------------------------- statistics


def sample_indices(n: int) -> list[int]:
    """Frames sampled for image statistics (compute_stats.estimate_num_samples / sample_indices)."""
    if n <= 0:
        return []
    lo = min(100, n)
    k = max(lo, min(int(n**0.75), 10_000))
    return np.round(np.linspace(0, n - 1, k)).astype(int).tolist()


def downsample(img_chw: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """compute_stats.auto_downsample_height_width on a (C, H, W) image."""
    _, h, w = img_chw.shape
    if max(w, h) < threshold:
        return img_chw
    f = int(w / target) if w > h else int(h / target)
    return img_chw[:, ::f, ::f]


def feature_stats(x: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """Statistics of one episode's values of a feature.

    Numbers: `x` is (n,) or (n, d); stats have shape (d,) ((1,) for scalars). Images:
    `x` is (n, 3, H, W) uint8; stats are per channel in [0, 1], shape (3, 1, 1);
    count is the number of frames sampled.
    """
    if image:
        v = x.astype(np.float64) / 255.0
        flat = v.transpose(1, 0, 2, 3).reshape(v.shape[1], -1)
        out = {
            "min": flat.min(axis=1), "max": flat.max(axis=1), "mean": flat.mean(axis=1), "std": flat.std(axis=1),
        }
        qs = np.quantile(flat, QUANTILES, axis=1)
        out |= {k: qs[i] for i, k in enumerate(QUANTILE_KEYS)}
        out = {k: v.reshape(-1, 1, 1) for k, v in out.items()}
        out["count"] = np.array([x.shape[0]], dtype=np.int64)
        return out
    v = np.asarray(x, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    out = {"min": v.min(axis=0), "max": v.max(axis=0), "mean": v.mean(axis=0), "std": v.std(axis=0)}
    qs = np.quantile(v, QUANTILES, axis=0)
    out |= {k: qs[i] for i, k in enumerate(QUANTILE_KEYS)}
    out["count"] = np.array([v.shape[0]], dtype=np.int64)
    return out


def aggregate(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """compute_stats.aggregate_feature_stats: the statistics of several episodes of one feature."""
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in stats])
    var = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in stats])
    counts = np.stack([np.asarray(s["count"], dtype=np.float64) for s in stats])
    total = counts.sum(axis=0)
    while counts.ndim < means.ndim:
        counts = np.expand_dims(counts, -1)
    mean = (means * counts).sum(axis=0) / total.reshape((-1,) + (1,) * (means.ndim - 2))
    v = ((var + (means - mean) ** 2) * counts).sum(axis=0) / total.reshape((-1,) + (1,) * (means.ndim - 2))
    out = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in stats]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in stats]), axis=0),
        "mean": mean,
        "std": np.sqrt(v),
        "count": total.astype(np.int64),
    }
    for k in QUANTILE_KEYS:
        q = np.stack([np.asarray(s[k]) for s in stats])
        out[k] = q.min(axis=0) if int(k[1:]) <= 50 else q.max(axis=0)
    return out


def stats_columns(feature: str, stats: dict[str, np.ndarray]) -> dict[str, list]:
    """An episode's statistics of one feature as episode-table columns stats/<feature>/<stat>."""
    return {f"stats/{feature}/{k}": np.asarray(v).tolist() for k, v in stats.items()}


def stats_from_row(row: dict, feature: str) -> dict[str, np.ndarray]:
    return {k: np.asarray(_deep_list(row[f"stats/{feature}/{k}"])) for k in STAT_KEYS}


def _deep_list(v):
    if isinstance(v, np.ndarray):
        return [_deep_list(x) for x in v] if v.dtype == object else v.tolist()
    if isinstance(v, (list, tuple)):
        return [_deep_list(x) for x in v]
    return v


def json_stats(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


# ----------------------------------------------------------------------------- reading


def read_info(root: str | os.PathLike) -> dict:
    return json.loads((Path(root) / INFO_PATH).read_text())


def read_table(root: str | os.PathLike, kind: str):
    """All files of `kind` ("data" or "meta/episodes") concatenated in sorted path order (pandas)."""
    import pandas as pd
    import pyarrow.parquet as pq

    paths = sorted((Path(root) / kind).glob("*/*.parquet"))
    if not paths:
        return pd.DataFrame()
    return pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)


def validate(root: str | os.PathLike) -> list[str]:
    """Problems with a dataset's files agreeing with each other (empty list: none).

    Checks info.json's keys and version, the per-frame columns, the episode table's
    columns, contiguous episode and frame index ranges, frame counts, timestamps
    i / fps within each episode, every episode's video time range inside its file's
    frames (read back from the MP4's packets), tasks, and stats for every feature.
    """
    from egoclean.media.remux import frame_times

    root = Path(root)
    problems: list[str] = []
    try:
        info = read_info(root)
    except (OSError, ValueError) as e:
        return [f"{INFO_PATH}: unreadable ({e})"]
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        problems.append(f"{INFO_PATH}: missing keys {missing}")
    if info.get("codebase_version") != CODEBASE_VERSION:
        problems.append(f"{INFO_PATH}: codebase_version {info.get('codebase_version')!r}, "
                        f"expected {CODEBASE_VERSION!r}")
    fps = info.get("fps")
    if not isinstance(fps, int) or fps <= 0:
        problems.append(f"{INFO_PATH}: fps {fps!r} is not a positive int")
        return problems
    features = info.get("features", {})
    for k, spec in DEFAULT_FEATURES.items():
        if features.get(k, {}).get("dtype") != spec["dtype"]:
            problems.append(f"{INFO_PATH}: feature {k} missing or not {spec['dtype']}")
    video_keys = [k for k, f in features.items() if f.get("dtype") == "video"]
    eps = read_table(root, "meta/episodes")
    data = read_table(root, "data")
    n_eps, n_frames = len(eps), len(data)
    if n_eps != info.get("total_episodes"):
        problems.append(f"episodes: {n_eps} rows, info.json says {info.get('total_episodes')}")
    if n_frames != info.get("total_frames"):
        problems.append(f"data: {n_frames} rows, info.json says {info.get('total_frames')}")
    if info.get("splits") != {"train": f"0:{n_eps}"}:
        problems.append(f"{INFO_PATH}: splits {info.get('splits')} do not cover 0:{n_eps}")
    need = list(EPISODE_KEYS) + [f"videos/{v}/{k}" for v in video_keys for k in VIDEO_EPISODE_KEYS]
    lacking = [c for c in need if c not in eps.columns]
    if lacking:
        return problems + [f"episodes: missing columns {lacking}"]
    lacking = [c for c, f in features.items() if f.get("dtype") != "video" and c not in data.columns]
    if lacking:
        return problems + [f"data: missing columns {lacking}"]
    try:
        import pandas as pd

        tasks = pd.read_parquet(root / TASKS_PATH)
        task_ids = set(tasks["task_index"].tolist())
    except (OSError, KeyError, ValueError) as e:
        problems.append(f"{TASKS_PATH}: unreadable or without task_index ({e})")
        task_ids = set()
    if len(task_ids) != info.get("total_tasks"):
        problems.append(f"{TASKS_PATH}: {len(task_ids)} tasks, info.json says {info.get('total_tasks')}")
    if eps["episode_index"].tolist() != list(range(n_eps)):
        problems.append("episodes: episode_index is not 0..N-1 in file order")
    if data["index"].tolist() != list(range(n_frames)):
        problems.append("data: index is not 0..total_frames-1 in file order")
    step = 1.0 / fps
    times: dict[tuple[str, int, int], np.ndarray] = {}
    cursor = 0
    for row in eps.to_dict("records"):
        e = int(row["episode_index"])
        a, b, n = int(row["dataset_from_index"]), int(row["dataset_to_index"]), int(row["length"])
        if a != cursor or b - a != n or n <= 0:
            problems.append(f"episode {e}: dataset_from/to_index {a}..{b} and length {n} do not follow {cursor}")
        cursor = b
        rows = data.iloc[a:b]
        if (rows["episode_index"] != e).any():
            problems.append(f"episode {e}: data rows {a}..{b} hold other episode indices")
            continue
        if rows["frame_index"].tolist() != list(range(n)):
            problems.append(f"episode {e}: frame_index is not 0..{n - 1}")
        ts = rows["timestamp"].to_numpy(dtype=np.float64)
        if len(ts) and (np.any(np.diff(ts) <= 0) or np.max(np.abs(ts - np.arange(n) * step)) > TOLERANCE_S):
            problems.append(f"episode {e}: timestamps are not frame_index / fps (monotonic, within {TOLERANCE_S} s)")
        if not set(rows["task_index"].unique().tolist()) <= task_ids:
            problems.append(f"episode {e}: task_index not in {TASKS_PATH}")
        for v in video_keys:
            key = (v, int(row[f"videos/{v}/chunk_index"]), int(row[f"videos/{v}/file_index"]))
            if key not in times:
                path = root / VIDEO_PATH.format(video_key=v, chunk_index=key[1], file_index=key[2])
                try:
                    times[key] = frame_times(path)
                except Exception as ex:  # noqa: BLE001 - any unreadable file is a finding
                    problems.append(f"episode {e}: video {path.relative_to(root)} unreadable ({ex})")
                    times[key] = np.zeros(0)
            ft = times[key]
            t0, t1 = float(row[f"videos/{v}/from_timestamp"]), float(row[f"videos/{v}/to_timestamp"])
            if len(ft) == 0:
                continue
            if abs(t1 - t0 - n * step) > TOLERANCE_S:
                problems.append(f"episode {e}: video range {t0:.4f}..{t1:.4f} s is not {n} frames long")
            want = t0 + np.arange(n) * step
            pos = np.clip(np.searchsorted(ft, want - TOLERANCE_S), 0, len(ft) - 1)
            if np.any(np.abs(ft[pos] - want) > TOLERANCE_S):
                problems.append(f"episode {e}: video range {t0:.4f}..{t1:.4f} s is not inside the frames of its file")
    if cursor != n_frames:
        problems.append(f"episodes cover {cursor} frames, data holds {n_frames}")
    try:
        stats = json.loads((root / STATS_PATH).read_text())
    except (OSError, ValueError) as e:
        return problems + [f"{STATS_PATH}: unreadable ({e})"]
    for f in features:
        if f not in stats:
            problems.append(f"{STATS_PATH}: no statistics for feature {f}")
        elif any(k not in stats[f] for k in ("min", "max", "mean", "std", "count")):
            problems.append(f"{STATS_PATH}: feature {f} lacks one of min/max/mean/std/count")
    return problems


def finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(float(x)) for x in values)
