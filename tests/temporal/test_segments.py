"""egoclean.temporal.segments: the CLI and the asset write one JSON shape, which Detection.from_dict reads."""

import json

import numpy as np

from egoclean.cli import main as cli_main
from egoclean.temporal.detection import Detection, detect
from egoclean.embed.embeddings import Embeddings
from egoclean.temporal.segments import clip_duration, segments_document

CLIP = "factory003_worker004_00005"  # in no ground truth


def _embeddings(n=90, seed=0):
    rng = np.random.default_rng(seed)
    temb = rng.normal(size=(n, 4, 16)).astype(np.float32)
    temb[40:60] += 3.0  # an odd stretch
    return Embeddings(temb.mean(axis=1), temb, np.arange(n, dtype=np.float64),
                      meta={"model": "m", "random_weights": True, "fps": 30.0, "n_frames": (n - 1) * 30 + 64})


def test_cli_segments_file_reads_back_and_has_the_assets_shape(tmp_path, capsys):
    emb = _embeddings()
    prefix = tmp_path / CLIP
    emb.save(prefix)
    out = tmp_path / "segments.json"
    assert cli_main(["detect", str(prefix), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    back = Detection.from_dict(doc)  # failed before: the CLI's JSON had no per-window series
    det = detect(emb)
    assert [(s.start_sec, s.end_sec) for s in back.spans] == [(s.start_sec, s.end_sec) for s in det.spans]
    np.testing.assert_allclose(back.smoothed, det.smoothed)
    # the asset writes segments_document(...) for the same clip: the same keys
    asset_doc = segments_document(CLIP, det, "m", True, clip_duration(emb.meta))
    assert set(doc) == set(asset_doc)
    assert doc["duration_sec"] == asset_doc["duration_sec"] == (89 * 30 + 64) / 30
