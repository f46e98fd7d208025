"""Tests for egoclean.temporal.detection: EMA, Otsu, hysteresis/debounce, spans, guard, detect_clip, CLI."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from egoclean.cli import main as cli_main
from egoclean.temporal.detection import (
    Detection,
    DetectionParams,
    Span,
    class_separation,
    detect,
    detect_scores,
    ema,
    hysteresis,
    otsu_threshold,
    work_spans,
)
from egoclean.embed.embeddings import Embeddings
from egoclean.core.errors import InvalidInputError
from egoclean.temporal.segments import detect_clip
from egoclean.temporal.evaluation import evaluate

CLIP = "factory001_worker001_00001"


def synthetic(n=400, spans=(), seed=0, t=8, d=64, noise=0.3, period=7.0):
    """Periodic 'work' temporal tokens + noise; planted window ranges [a, b) from another process."""
    rng = np.random.default_rng(seed)
    base, u, v, other, ou = rng.normal(size=(5, d))
    ts = np.arange(n, dtype=np.float64)
    tt = ts[:, None] + np.arange(t)[None, :] * (64 / 30 / t)
    ph = 2 * np.pi * tt / period
    temb = base + np.cos(ph)[..., None] * u + np.sin(ph)[..., None] * v
    for a, b in spans:
        temb[a:b] = other + np.cos(2 * np.pi * tt[a:b] / 3.1)[..., None] * ou
    temb = (temb + noise * rng.normal(size=temb.shape)).astype(np.float32)
    truth = [(ts[a], ts[b] if b < n else ts[-1]) for a, b in spans]
    return Embeddings(temb.mean(axis=1), temb, ts, {"model": "synthetic-model", "random_weights": True}), truth


# ------------------------------------------------------------------ EMA and Otsu
def test_ema_by_hand():
    np.testing.assert_allclose(ema([1.0, 0.0, 0.0, 1.0], 0.5), [1.0, 0.5, 0.25, 0.625])
    # alpha 0.15: s1 = 0.15 * 2 + 0.85 * 0 = 0.3; s2 = 0.15 * 2 + 0.85 * 0.3 = 0.555
    np.testing.assert_allclose(ema([0.0, 2.0, 2.0], 0.15), [0.0, 0.3, 0.555])
    np.testing.assert_array_equal(ema([3.0, 1.0], 1.0), [3.0, 1.0])


def test_otsu_by_hand():
    # bins=4 over [0, 8]: edges 0,2,4,6,8; counts [2,1,0,2]; centres 1,3,5,7.
    # k=1: 2*3*(1 - 17/3)^2 = 130.7; k=2: 3*2*(5/3 - 7)^2 = 170.7; k=3 ties k=2 (empty bin):
    # the first maximum wins, theta = upper edge of bin 1 = 4.0.
    assert otsu_threshold(np.array([0.0, 1.0, 2.0, 7.0, 8.0]), bins=4) == 4.0
    # two clusters -> threshold between them; 1 above, 9 below
    x = np.array([0.0] * 9 + [10.0])
    th = otsu_threshold(x, bins=10)
    assert th == 1.0  # upper edge of the lowest bin (first of the tied splits)
    assert otsu_threshold(np.full(7, 0.3)) is None
    assert otsu_threshold(np.array([])) is None


def test_otsu_agrees_with_opencv_on_8bit_data():
    """With integer data spanning 0..255 and 256 bins, bin k holds value k, so OpenCV's
    8-bit Otsu (class 0 = values <= t) must give theta = upper edge of bin t."""
    rng = np.random.default_rng(0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = np.concatenate([rng.normal(70, 20, 700), rng.normal(170 + 10 * seed, 15, 300)])
        q = np.clip(np.round(x), 0, 255).astype(np.uint8)
        q[0], q[1] = 0, 255
        t, _ = cv2.threshold(q.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        edges = np.linspace(0, 255, 257)
        assert otsu_threshold(q.astype(np.float64), bins=256) == pytest.approx(edges[int(t) + 1])


# ------------------------------------------------------------------ hysteresis / debounce
def test_hysteresis_threshold_semantics():
    on, off = 1.0, 0.5
    # >= theta_on counts as above; values between theta_off and theta_on keep a span on.
    s = [0, 1.0, 1.0, 1.0, 0.7, 0.6, 0.5, 0.2, 0.2, 0.2, 0]
    assert hysteresis(s, on, off, 3, 3) == [(1, 7)]
    # 0.5 is not below theta_off (strict <), so only 3 strict dips end it
    assert hysteresis([1, 1, 1, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4], on, off, 3, 3) == [(0, 6)]


def scores(pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """'.' = 0 (work), '#' = 1 (anomalous); windows 1 s apart."""
    s = np.array([1.0 if c == "#" else 0.0 for c in pattern])
    return np.arange(len(s), dtype=np.float64), s


RAW = DetectionParams(ema_alpha=1.0, min_duration_sec=0.0)  # no smoothing: smoothed == score


def test_two_windows_above_give_no_span_three_do():
    ts, s = scores("....##......##.....")
    assert detect_scores(ts, s, RAW).spans == []
    ts, s = scores("....###........")
    det = detect_scores(ts, s, RAW)
    assert [(x.start_sec, x.end_sec) for x in det.spans] == [(4.0, 7.0)]
    assert det.is_anomaly.tolist() == [c == "#" for c in "....###........"]
    assert det.spans[0].peak_score == 1.0


def test_short_dips_do_not_end_a_span_three_do():
    ts, s = scores("...#####.#####..##.####......")
    det = detect_scores(ts, s, RAW)
    assert [(x.start_sec, x.end_sec) for x in det.spans] == [(3.0, 23.0)]
    ts, s = scores("...#####...#####......")
    det = detect_scores(ts, s, RAW)
    assert [(x.start_sec, x.end_sec) for x in det.spans] == [(3.0, 8.0), (11.0, 16.0)]


def test_spans_at_the_very_start_and_end():
    ts, s = scores("#####..........#####")
    det = detect_scores(ts, s, RAW)
    # end of the last span = the last window's time (19), not one past it
    assert [(x.start_sec, x.end_sec) for x in det.spans] == [(0.0, 5.0), (15.0, 19.0)]
    assert [(w.start_sec, w.end_sec) for w in det.work_spans] == [(5.0, 15.0)]


def test_minimum_duration_drops_short_spans():
    ts, s = scores("...###.......###")  # middle: 3 s (kept at 3.0), end: 13..15 = 2 s
    det = detect_scores(ts, s, DetectionParams(ema_alpha=1.0))
    assert [(x.start_sec, x.end_sec) for x in det.spans] == [(3.0, 6.0)]
    assert not det.is_anomaly[13:].any()
    det = detect_scores(ts, s, DetectionParams(ema_alpha=1.0, min_duration_sec=3.5))
    assert det.spans == []
    det = detect_scores(ts, s, DetectionParams(ema_alpha=1.0, min_duration_sec=2.0))
    assert len(det.spans) == 2


def test_thresholds_follow_the_spec():
    rng = np.random.default_rng(0)
    score = np.concatenate([rng.normal(0.2, 0.01, 100), rng.normal(0.5, 0.01, 20), rng.normal(0.2, 0.01, 80)])
    det = detect_scores(np.arange(200.0), score)
    assert det.theta_on == otsu_threshold(ema(score, 0.15), 256)
    assert det.median == pytest.approx(np.median(det.smoothed))
    assert det.theta_off == pytest.approx(det.median + 0.5 * (det.theta_on - det.median))
    assert det.median < det.theta_off < det.theta_on


def test_constant_score_gives_no_spans_and_clean_json():
    det = detect_scores(np.arange(50.0), np.full(50, 0.25))
    assert det.spans == [] and not det.is_anomaly.any()
    assert [(w.start_sec, w.end_sec) for w in det.work_spans] == [(0.0, 49.0)]
    d = json.loads(json.dumps(det.to_dict(series=True), allow_nan=False))
    assert d["theta_on"] is None and d["spans"] == [] and len(d["smoothed"]) == 50


def test_work_spans_complement():
    spans = [Span(10, 20, 0.5), Span(0, 3, 0.4), Span(18, 30, 0.6)]
    assert [(w.start_sec, w.end_sec) for w in work_spans(spans, 0, 40)] == [(3, 10), (30, 40)]
    assert work_spans([Span(0, 40, 1)], 0, 40) == []


def test_bad_parameters_and_inputs_are_refused():
    with pytest.raises(InvalidInputError, match="ema_alpha=0"):
        DetectionParams(ema_alpha=0)
    with pytest.raises(InvalidInputError, match="on_windows=0"):
        DetectionParams(on_windows=0)
    with pytest.raises(InvalidInputError, match="NaN"):
        detect_scores(np.arange(3.0), np.array([0.1, np.nan, 0.2]))
    with pytest.raises(InvalidInputError, match="strictly increasing"):
        detect_scores(np.array([0.0, 2.0, 1.0]), np.array([0.1, 0.3, 0.2]))


# ------------------------------------------------------------------ on synthetic embeddings
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_spans_are_found_without_false_positives(seed):
    emb, truth = synthetic(spans=((40, 75), (180, 210), (300, 340)), seed=seed)
    det = detect(emb)
    ev = evaluate(det.spans, truth)
    assert ev.passed, ev.report_lines()
    assert all(t.best_iou >= 0.5 for t in ev.truth)
    assert det.is_anomaly.sum() == pytest.approx(sum(s.duration_sec for s in det.spans), abs=1)
    covered = sum(w.duration_sec for w in det.work_spans) + sum(s.duration_sec for s in det.spans)
    assert covered == pytest.approx(emb.ts[-1] - emb.ts[0])


def test_planted_spans_at_the_clip_edges():
    emb, truth = synthetic(spans=((0, 30), (370, 400)))
    det = detect(emb)
    assert evaluate(det.spans, truth).passed
    assert det.spans[0].start_sec == 0.0 and det.spans[-1].end_sec == emb.ts[-1]


def test_clean_clip_is_flagged_without_guard_and_not_with_it():
    clean, _ = synthetic(seed=3)
    plain = detect(clean)
    assert plain.spans  # Otsu always splits: the unguarded method flags noise
    guarded = detect(clean, DetectionParams(min_separation=4.0))
    assert guarded.spans == [] and guarded.suppressed and guarded.separation < 4.0
    planted, truth = synthetic(spans=((40, 75), (180, 210), (300, 340)), seed=3)
    kept = detect(planted, DetectionParams(min_separation=4.0))
    assert not kept.suppressed and evaluate(kept.spans, truth).passed


def test_class_separation_by_hand():
    # classes {0, 2} and {10, 12}: gap 10, pooled within-class variance 1 -> 10
    assert class_separation(np.array([0.0, 2.0, 10.0, 12.0]), 5.0) == pytest.approx(10.0)
    assert class_separation(np.array([1.0, 1.0]), 5.0) is None


def test_score_constant_up_to_rounding_is_treated_as_constant():
    # Two windows score the same in exact arithmetic; float rounding makes them differ by
    # an ulp or so, which numpy cannot split into 256 bins ("Too many bins for data range").
    x = 0.3
    for score in ([x, np.nextafter(x, 1.0)], [x, x + 4e-16, x - 2e-16, x], [1e-17, 0.0, 3e-17]):
        assert otsu_threshold(np.array(score)) is None
        det = detect_scores(np.arange(float(len(score))), np.array(score))
        assert det.spans == [] and det.theta_on == math.inf and not det.is_anomaly.any()
    # A real difference, however small against the score, is still split.
    assert otsu_threshold(np.array([0.3, 0.3 + 1e-6])) is not None


@pytest.mark.parametrize("n", range(1, 13))
def test_every_clip_length_from_one_window_gives_a_result(n):
    for seed in range(40):
        rng = np.random.default_rng(seed)
        temb = rng.normal(size=(n, 4, 16)).astype(np.float32)
        for t in (temb, np.repeat(temb[:1], n, axis=0)):  # random windows, and a still scene
            det = detect(Embeddings(t.mean(axis=1), t, np.arange(n) * (64 / 30)))
            assert isinstance(det, Detection) and len(det.smoothed) == n
            if n <= 2:
                assert det.spans == []  # too few windows for on_windows=3


def test_single_window_clip_gives_no_spans():
    emb = Embeddings(np.ones((1, 4), np.float32), np.ones((1, 2, 4), np.float32), np.zeros(1))
    det = detect(emb)
    assert isinstance(det, Detection) and det.spans == [] and det.work_spans == []


# ------------------------------------------------------------------ detect_clip and CLI
@pytest.fixture()
def saved_clip(tmp_path):
    emb, truth = synthetic(spans=((40, 75), (180, 210), (300, 340)))
    prefix = tmp_path / "emb" / CLIP
    emb.save(prefix)
    csv = tmp_path / "gt.csv"
    rows = [f"{CLIP},400,{a:g},{b:g},planted" for a, b in truth] + ["factory001_worker001_00002,100,00:10,00:20,other"]
    csv.write_text("clip_id,clip_duration_sec,start,end,label\n" + "\n".join(rows) + "\n")
    return prefix, csv, truth


def test_detect_clip_end_to_end(saved_clip, tmp_path):
    prefix, csv, truth = saved_clip
    out = tmp_path / "out" / "segments.json"
    report = detect_clip(prefix, out_json=out, plots_dir=tmp_path / "plots", ground_truth=csv)
    doc = json.loads(out.read_text())
    assert doc["clip_id"] == CLIP and doc["model"] == "synthetic-model" and doc["random_weights"] is True
    assert len(doc["spans"]) == 3
    for key in ("start_sec", "end_sec", "duration_sec", "peak_score"):
        assert key in doc["spans"][0]
    assert doc["theta_on"] > doc["theta_off"] > doc["median"]
    assert doc["work_spans"] and doc["evaluation"]["passed"] is True
    assert doc["evaluation"]["n_truth"] == 3  # the other clip's row is not used
    assert "(random weights)" in report and "PASS" in report
    first = doc["spans"][0]
    assert f"span 1: {first['start']}-{first['end']}" in report  # listed as mm:ss
    for name in (f"{CLIP}_diagnostics.png", f"{CLIP}_detection.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 10_000


def test_cli_detect(saved_clip, tmp_path, capsys):
    prefix, csv, _ = saved_clip
    out = tmp_path / "cli.json"
    rc = cli_main(["detect", str(prefix), "-o", str(out), "--ground-truth", str(csv), "--min-separation", "4"])
    printed = capsys.readouterr().out
    assert rc == 0 and "3 anomalous span(s)" in printed and "precision 1.00 recall 1.00" in printed
    assert json.loads(out.read_text())["params"]["min_separation"] == 4.0
    rc = cli_main(["detect", str(tmp_path / "nope" / CLIP)])
    err = capsys.readouterr().err
    assert rc == 2 and "missing file" in err and "nope" in err


def test_cli_detect_on_a_two_window_clip(tmp_path, capsys):
    # A 4 s clip at 30 fps has two windows; seed 199 is one whose scores differ by an ulp.
    rng = np.random.default_rng(199)
    temb = rng.normal(size=(2, 8, 64)).astype(np.float32)
    prefix = tmp_path / "emb" / CLIP
    Embeddings(temb.mean(axis=1), temb, np.array([0.0, 64 / 30])).save(prefix)
    out = tmp_path / "two.json"
    rc = cli_main(["detect", str(prefix), "-o", str(out), "--plots", str(tmp_path / "plots")])
    assert rc == 0, capsys.readouterr().err
    assert "2 windows, 0 anomalous span(s)" in capsys.readouterr().out
    assert json.loads(out.read_text())["spans"] == []


def test_from_dict_rebuilds_what_to_dict_wrote():
    rng = np.random.default_rng(3)
    score = np.r_[rng.normal(0.1, 0.01, 40), rng.normal(0.6, 0.01, 15), rng.normal(0.1, 0.01, 40)]
    det = detect_scores(np.arange(len(score), dtype=float), score)
    back = Detection.from_dict(json.loads(json.dumps(det.to_dict(series=True))))
    assert back.spans == det.spans and back.work_spans == det.work_spans
    assert np.array_equal(back.is_anomaly, det.is_anomaly)
    assert np.allclose(back.smoothed, det.smoothed) and back.theta_on == pytest.approx(det.theta_on)
    assert back.params == det.params
    with pytest.raises(InvalidInputError, match="series=True"):
        Detection.from_dict(det.to_dict())
