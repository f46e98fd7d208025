"""Outputs are published only when the step that makes them has succeeded: a failed
anomaly_segments step leaves no final-named segments JSON."""

from __future__ import annotations

import numpy as np
import pytest
from dagster import Failure, build_asset_context

from egoclean.embed.embeddings import Embeddings
from egoclean_assets.assets.temporal import anomaly_segments
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.resources import DetectionResource, GroundTruthResource, StoreResource

from .conftest import part_files

KEY = "factory001_worker001_00001"


def _artifact(tmp_path) -> ClipArtifact:
    rng = np.random.default_rng(0)
    temb = rng.normal(size=(30, 4, 16)).astype(np.float32)
    prefix = tmp_path / "emb" / KEY
    Embeddings(temb.mean(axis=1), temb, np.arange(30) * 2.0, {"model": "m", "random_weights": True}).save(prefix)
    video = {"frames": 900, "fps": 30.0, "width": 64, "height": 48, "duration_sec": 30.0}
    return ClipArtifact(KEY, "vjepa_embeddings", files={"emb": f"{prefix}_emb.npy"},
                        info={"video": video, "model": "m", "random_weights": True}, folder=str(prefix.parent))


def run(tmp_path, db):
    storage = ClipStorage(data_root=str(tmp_path / "data"))
    return anomaly_segments(build_asset_context(partition_key=KEY), vjepa_embeddings=_artifact(tmp_path),
                            detection=DetectionResource(), store=StoreResource(path=str(db)),
                            ground_truth=GroundTruthResource(include_seed=False), storage=storage)


def test_a_failed_store_write_leaves_no_segments_json(tmp_path):
    bad_db = tmp_path / "db_is_a_folder.duckdb"
    bad_db.mkdir()
    # bad input to the store fails the step once, as a one-line dagster.Failure (not retried)
    with pytest.raises(Failure, match="db_is_a_folder") as e:
        run(tmp_path, bad_db)
    assert e.value.allow_retries is False
    data = tmp_path / "data"
    assert not list(data.rglob(f"{KEY}_segments.json")) and part_files(data) == []
    out = run(tmp_path, tmp_path / "ok.duckdb")  # and with a working store it is there
    assert out.value.path("json").is_file()
