"""egoclean.embed.embeddings: a prefix's four files are saved and loaded as one set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from egoclean.core import atomic
from egoclean.embed.embeddings import Embeddings, paths
from egoclean.core.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]


def one_set(writer: int, n: int) -> Embeddings:
    """A set whose every value names its writer, with a writer-specific window count."""
    return Embeddings(np.full((n, 4), writer, np.float32), np.full((n, 2, 4), writer, np.float32),
                      np.arange(n, dtype=np.float64), {"writer": writer})


def whole(e: Embeddings) -> bool:
    w = e.meta["writer"]
    return bool((e.emb == w).all() and (e.temb == w).all() and len(e) == 3 + w)


def test_save_and_load_roundtrip(tmp_path):
    one_set(1, 4).save(tmp_path / "p")
    back = Embeddings.load(tmp_path / "p", mmap=True)
    assert whole(back) and back.meta == {"writer": 1}


WRITER = """
import sys
import numpy as np
from egoclean.embed.embeddings import Embeddings
prefix, writer, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = 3 + writer
for _ in range(rounds):
    Embeddings(np.full((n, 4), writer, np.float32), np.full((n, 2, 4), writer, np.float32),
               np.arange(n, dtype=np.float64), {"writer": writer}).save(prefix)
"""


def test_two_writers_of_one_prefix_leave_one_whole_set(tmp_path):
    """Two processes save different sets to the same prefix 150 times each while this one
    reads: every load is one writer's whole set, and so is what is left at the end."""
    prefix = tmp_path / "emb" / "factory001_worker001_00001"
    one_set(1, 4).save(prefix)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(prefix), str(w), "150"], env=env) for w in (1, 2)]
    loads = mixed = 0
    try:
        while any(p.poll() is None for p in procs):
            try:
                e = Embeddings.load(prefix)
            except InvalidInputError as err:  # a refused mix would also be a failure here
                pytest.fail(f"load refused during concurrent saves: {err}")
            loads += 1
            mixed += not whole(e)
            time.sleep(0.001)
    finally:
        for p in procs:
            p.wait(timeout=120)
    assert [p.returncode for p in procs] == [0, 0]
    assert mixed == 0 and loads > 0, f"{mixed} of {loads} loads mixed two sets"
    assert whole(Embeddings.load(prefix))
    assert [p.name for p in prefix.parent.iterdir() if atomic.is_temp_name(p)] == []


def test_a_set_left_half_renamed_is_refused_on_load(tmp_path, monkeypatch):
    prefix = tmp_path / "p"
    one_set(1, 4).save(prefix)
    real, count = os.replace, []

    def crash_after_two(src, dst):
        count.append(dst)
        if len(count) == 3:
            raise OSError(5, "Input/output error (simulated crash between renames)")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash_after_two)
    with pytest.raises(OSError, match="simulated"):
        one_set(2, 5).save(prefix)
    monkeypatch.undo()
    with pytest.raises(InvalidInputError, match=r"p_emb.npy.*not one set"):
        Embeddings.load(prefix)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickled", "bad-meta", "nested-meta"])
def test_damaged_files_are_one_line_errors(tmp_path, damage):
    prefix = tmp_path / "p"
    one_set(1, 4).save(prefix)
    p = paths(prefix)
    meta = json.loads(p["meta"].read_text())
    meta.pop("files", None)  # as an earlier tool wrote it: no digests to catch the damage
    p["meta"].write_text(json.dumps(meta))
    if damage == "truncated":
        p["temb"].write_bytes(p["temb"].read_bytes()[:100])
    elif damage == "garbage":
        p["emb"].write_bytes(b"\x93NUMPY\x01\x00garbage" + bytes(50))
    elif damage == "empty":
        p["ts"].write_bytes(b"")
    elif damage == "pickled":
        np.save(p["emb"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "bad-meta":
        p["meta"].write_text("{not json")
    else:
        p["meta"].write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInputError) as e:
        Embeddings.load(prefix)
    assert "embeddings" in str(e.value) and str(tmp_path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("damage", ["npz-truncated", "npz-garbage", "npy-garbage", "npy-missing"])
def test_damaged_analysis_files_are_one_line_errors(tmp_path, damage):
    from egoclean.temporal.analysis import Analysis, analyse

    rng = np.random.default_rng(0)
    temb = rng.normal(size=(12, 2, 8)).astype(np.float32)
    prefix = tmp_path / "a"
    analyse(Embeddings(temb.mean(axis=1), temb, np.arange(12) * 2.0), matrices=True).save(prefix)
    npz, npy = Path(f"{prefix}_analysis.npz"), Path(f"{prefix}_sim_mean.npy")
    if damage == "npz-truncated":
        npz.write_bytes(npz.read_bytes()[:200])
    elif damage == "npz-garbage":
        npz.write_bytes(b"PK\x03\x04" + bytes(300))
    elif damage == "npy-garbage":
        npy.write_bytes(b"\x93NUMPY garbage")
    else:
        npy.unlink()
    with pytest.raises(InvalidInputError) as e:
        Analysis.load(prefix)
    assert "analysis" in str(e.value) and str(tmp_path) in str(e.value) and "\n" not in str(e.value)
