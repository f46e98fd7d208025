"""Tests for egoclean.temporal.plots: the diagnostics and detection PNGs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from egoclean.temporal.analysis import analyse
from egoclean.temporal.detection import DetectionParams, detect
from egoclean.temporal.segments import figure_title
from egoclean.embed.embeddings import Embeddings
from egoclean.temporal.evaluation import GroundTruthSpan
from egoclean.temporal.plots import MAX_DISPLAY, _display_matrix, plot_detection, plot_diagnostics

CLIP = "factory001_worker001_00003"


def embeddings(n=120, seed=0) -> Embeddings:
    rng = np.random.default_rng(seed)
    temb = rng.normal(size=(n, 4, 16)) + np.sin(np.arange(n) / 3.0)[:, None, None]
    temb[50:70] += 3.0 * rng.normal(size=16)
    temb = temb.astype(np.float32)
    return Embeddings(temb.mean(axis=1), temb, np.arange(n) * 1.0, {"model": "facebook/tiny", "random_weights": True})


def png_title(path) -> str:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 500
        return im.text["Title"]


def test_diagnostics_picture(tmp_path):
    emb = embeddings()
    title = figure_title(CLIP, emb.meta)
    assert title == f"{CLIP} - facebook/tiny (random weights)"
    out = plot_diagnostics(analyse(emb), tmp_path / "d" / "diag.png", title)
    assert png_title(out) == title
    assert out.stat().st_size > 20_000
    assert [p.name for p in out.parent.iterdir()] == ["diag.png"]  # no temp files left


def test_diagnostics_without_matrices_and_with_subsampled_ones(tmp_path):
    emb = embeddings(n=90)
    assert png_title(plot_diagnostics(analyse(emb, matrices=False), tmp_path / "a.png", "x")) == "x"
    assert png_title(plot_diagnostics(analyse(emb, max_matrix=30), tmp_path / "b.png", "y")) == "y"


def test_detection_picture_with_truth_and_title_without_random_weights(tmp_path):
    emb = embeddings()
    emb.meta = {"model": "facebook/vjepa2-vitl-fpc64-256"}
    title = figure_title(CLIP, emb.meta)
    assert "random" not in title and "vjepa2" in title
    det = detect(emb)
    truth = [GroundTruthSpan(CLIP, 120, 50, 70, "odd"), (100.0, 110.0)]
    out = plot_detection(det, tmp_path / "det.png", title, truth=truth)
    assert png_title(out) == title and out.stat().st_size > 20_000
    # constant score: no thresholds to draw, still a picture
    flat = Embeddings(np.ones((10, 3), np.float32), np.ones((10, 2, 3), np.float32), np.arange(10.0))
    flat_det = detect(flat, DetectionParams())
    assert png_title(plot_detection(flat_det, tmp_path / "flat.png", "flat")) == "flat"
    flat_det.theta_on = flat_det.theta_off = None  # as rebuilt from the JSON (null thresholds)
    assert png_title(plot_detection(flat_det, tmp_path / "flat2.png", "flat2")) == "flat2"


def test_long_matrices_are_block_averaged_for_display():
    m = np.arange(1300 * 1300, dtype=np.float32).reshape(1300, 1300)
    ts = np.arange(1300.0)
    shown, st = _display_matrix(m, ts)
    assert shown.shape[0] <= MAX_DISPLAY and shown.shape == (len(st), len(st))
    assert st[0] == np.mean(ts[:3]) and shown[0, 0] == m[:3, :3].mean()
    small, _ = _display_matrix(m[:100, :100], ts[:100])
    assert small.shape == (100, 100)


def test_thumbnail_is_narrow_small_and_leaves_the_full_picture(tmp_path):
    import io

    from egoclean.temporal.plots import THUMBNAIL_MAX_BYTES, THUMBNAIL_WIDTH, thumbnail

    emb = embeddings()
    pictures = [plot_diagnostics(analyse(emb), tmp_path / "diag.png", "t"),  # noise-like matrices
                plot_detection(detect(emb), tmp_path / "det.png", "t")]  # lines and text
    for out in pictures:
        full = out.read_bytes()
        small, mime = thumbnail(out)
        assert len(small) <= THUMBNAIL_MAX_BYTES < len(full)
        with Image.open(io.BytesIO(small)) as im, Image.open(out) as big:
            assert im.format == mime.split("/")[1].upper() and im.size[0] <= THUMBNAIL_WIDTH
            assert abs(im.size[1] / im.size[0] - big.size[1] / big.size[0]) < 0.02  # same proportions
        assert out.read_bytes() == full
    # a plot of lines stays a sharp PNG at full thumbnail width
    small, mime = thumbnail(pictures[1])
    assert mime == "image/png"


def test_detection_thumbnail_keeps_the_line_colours_and_a_legible_width(tmp_path):
    """The UI's copy of the detection picture keeps the EMA blue beside large red and hatched green
    areas (the default quantizer turned it green, issue 18) and is DETECTION_THUMBNAIL_WIDTH wide."""
    import io

    from egoclean.temporal.plots import DETECTION_THUMBNAIL_WIDTH, THUMBNAIL_MAX_BYTES, thumbnail

    emb = embeddings()
    det = detect(emb)
    end = float(emb.ts[-1])
    out = plot_detection(det, tmp_path / "det.png", "t", truth=[(0.1 * end, 0.6 * end)])
    small, mime = thumbnail(out, width=DETECTION_THUMBNAIL_WIDTH)
    assert mime == "image/png" and len(small) <= THUMBNAIL_MAX_BYTES
    with Image.open(io.BytesIO(small)) as im:
        assert im.size[0] == DETECTION_THUMBNAIL_WIDTH
        px = np.asarray(im.convert("RGB"), dtype=int).reshape(-1, 3)
    blue = np.array([31, 119, 180])  # matplotlib's tab:blue, the EMA line
    assert (np.abs(px - blue).sum(axis=1) < 40).sum() > 200
