"""The dataset directory: the files an EgoClean export holds, opening it, and publishing a new version.

A dataset directory is ours when it holds `meta/egoclean.json`. A new version is
assembled in a hidden sibling directory (unchanged files hard-linked, not copied) and
published by `swap`: two renames. A crash between them leaves the previous version
under a hidden name, which `recover` (run by `open_existing`) puts back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egoclean.core import atomic
from egoclean.core.errors import InvalidInputError
from egoclean.export import lerobot

VIDEO_KEY = "observation.images.egocentric"
SCORE_KEY = "observation.anomaly_score"
STATE_KEY = "observation.state"  # the camera pose relative to the episode start (egoclean.motion.episodes)
ACTION_KEY = "action"  # the camera motion to the next frame
META_PATH = "meta/egoclean.json"
CARD_PATH = "README.md"
FORMAT_VERSION = 1
PREVIOUS_SUFFIX = ".previous"


@dataclass
class Existing:
    """The dataset already in the output directory (empty when there is none)."""

    info: dict | None = None
    episodes: Any = None  # pandas DataFrame
    tasks: dict[str, int] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def part_files(part: int) -> tuple[str, str, str]:
    """The data, episodes and video files (relative paths) of one part of the dataset."""
    c, f = lerobot.chunk_file(part)
    return (lerobot.DATA_PATH.format(chunk_index=c, file_index=f),
            lerobot.EPISODES_PATH.format(chunk_index=c, file_index=f),
            lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY, chunk_index=c, file_index=f))


def resolve_output(out: str | os.PathLike) -> Path:
    """The directory an export publishes: a symbolic link is followed to its target (the new version is
    assembled beside the target, on its disk, and the link stays a link); the file system's root or a
    path without a name is refused."""
    given = Path(out).expanduser()
    path = Path(os.path.realpath(given)) if given.is_symlink() else given.absolute()
    if path.parent == path or path.name in ("", ".", ".."):
        raise InvalidInputError(f"export output {out}: is the root of the file system or has no name; "
                                "an export publishes a directory of its own: choose one such as /data/my-dataset")
    return path


@contextlib.contextmanager
def exclusive(out: Path):
    """Hold the dataset's lock (`.NAME.lock` beside it) for a whole export: a second export into the
    same directory waits, then adds to what the first published instead of replacing it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(f".{out.name}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def remove_stale_stages(out: Path) -> list[Path]:
    """Remove staging directories that killed exports left (call under `exclusive`: no export runs then)."""
    gone = []
    for p in out.parent.glob(f".{out.name}.export-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


def recover(out: Path) -> None:
    """Finish a swap that crashed between its two renames (the previous version is put back)."""
    prev = out.with_name(f".{out.name}{PREVIOUS_SUFFIX}")
    if prev.is_symlink():  # left by an earlier EgoClean that replaced a linked output by a directory
        if not out.exists():
            os.rename(prev, out)
        else:
            prev.unlink()
        return
    if prev.is_dir():
        if not out.exists():
            os.rename(prev, out)
        else:
            shutil.rmtree(prev, ignore_errors=True)


def open_existing(out: Path) -> Existing:
    """Read the dataset at `out`; a directory holding anything but an EgoClean export is an error."""
    import pandas as pd

    recover(out)
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


def staging_dir(out: Path, tag: str) -> Path:
    """The hidden sibling of `out` where a new version is assembled."""
    return out.with_name(f".{out.name}.export-{tag}")


def write_parquet(path: Path, table) -> None:
    """Write `table` to `path` atomically, never through a hard link to the previous version's file."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a hard link to the previous version's file: never write through it
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="snappy")


def link_tree(src: Path, dst: Path) -> None:
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


def swap(stage: Path, out: Path) -> None:
    """Publish `stage` as `out`: two renames; the previous version is removed afterwards."""
    prev = out.with_name(f".{out.name}{PREVIOUS_SUFFIX}")
    if prev.exists():
        shutil.rmtree(prev)
    if out.exists():
        os.rename(out, prev)
    os.rename(stage, out)
    shutil.rmtree(prev, ignore_errors=True)
