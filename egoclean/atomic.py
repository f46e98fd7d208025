"""Atomic file output: write to a temporary name beside the target, then rename.

An interrupted or failed write never leaves a file under the final name, and an
existing file under that name is untouched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

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
