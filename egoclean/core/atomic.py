"""Atomic file output: write to a temporary name beside the target, then rename.

An interrupted or failed write never leaves a file under the final name, and an
existing file under that name is untouched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np


def temp_name(dest: Path) -> Path:
    """A hidden temporary path beside `dest` that keeps its suffix (PyAV picks the
    container from it)."""
    return dest.with_name(f".{dest.stem}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}{dest.suffix}")


def is_temp_name(path: Path) -> bool:
    return path.name.startswith(".") and ".part-" in path.name


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, shared: bool = False) -> Iterator[None]:
    """Hold an flock on a folder: exclusive while a set of files is renamed into it
    (`atomic_paths`), shared while a reader reads such a set, so a reader never sees
    half of one set and half of another and two writers never interleave their renames."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def atomic_paths(dests: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for files published together (all in one folder): on success each
    is fsynced, then all are renamed in the given order (the last one marks the set
    complete) under an exclusive `folder_lock`. On failure none is renamed and the
    temporary files are removed. Only a crash between two renames (microseconds) can
    leave part of a new set beside part of the old one; the last file of a set should
    record the others (sizes, digests) so a reader can tell."""
    dests = [Path(d) for d in dests]
    folder = dests[0].parent
    if any(d.parent != folder for d in dests):
        raise ValueError(f"files published together must share one folder: {', '.join(map(str, dests))}")
    folder.mkdir(parents=True, exist_ok=True)
    tmps = [temp_name(d) for d in dests]
    try:
        yield tmps
        for tmp in tmps:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        with folder_lock(folder):
            for tmp, dest in zip(tmps, dests):
                os.replace(tmp, dest)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (memory stays one chunk)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return write_bytes(dest, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_npy(dest: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return Path(dest)
