"""Tests for egoclean.temporal.evaluation: ground-truth CSV loading and span matching."""

from __future__ import annotations

import json

import pytest

from egoclean.core.errors import GroundTruthError
from egoclean.temporal.evaluation import GroundTruthSpan, evaluate, iou, load_ground_truth, parse_time, truth_for

HEADER = "clip_id,clip_duration_sec,start,end,label\n"
CLIP = "factory001_worker001_00001"


def test_packaged_seed_table_is_the_spec_table():
    rows = load_ground_truth()
    assert [(r.clip_id, r.clip_duration_sec, r.start_sec, r.end_sec) for r in rows] == [
        ("factory001_worker001_00001", 431.0, 208.0, 262.0),
        ("factory001_worker001_00001", 431.0, 420.0, 433.0),  # 2 s past the stated 431 s: tolerated
        ("factory001_worker001_00002", 1200.0, 127.0, 174.0),
        ("factory001_worker001_00002", 1200.0, 969.0, 1023.0),
    ]
    assert rows[3].label == "gets up"
    assert len(truth_for(rows, "factory001_worker001_00002")) == 2


def test_packaged_copy_equals_the_shared_reference(shared_data):
    assert load_ground_truth() == load_ground_truth(shared_data / "egocentric10k" / "ground_truth_seed.csv")


@pytest.mark.parametrize(
    "text, sec",
    [("03:28", 208.0), ("7:00", 420.0), ("1:02:03", 3723.0), ("12.5", 12.5), (" 0 ", 0.0), ("00:01.5", 1.5)]
)
def test_parse_time(text, sec):
    assert parse_time(text) == sec


@pytest.mark.parametrize("text", ["", "abc", "-3", "1:75", "1:60:00", "nan", "3:", "inf"])
def test_parse_time_refuses(text):
    with pytest.raises(ValueError, match="unparseable time"):
        parse_time(text)


@pytest.mark.parametrize(
    "body, problem",
    [
        (f"{CLIP},431,03:28,xx:22,a\n", r"line 2: column end: unparseable time 'xx:22'"),
        (f"{CLIP},431,03:28,04:22,a\n{CLIP},431,04:22,04:22,b\n", r"line 3: end 04:22 is not after start 04:22"),
        (f"{CLIP},431,07:00,07:20,a\n", r"line 2: end 07:20 \(440 s\) is beyond the clip duration 431 s"),
        (f"{CLIP},100,1,106,a\n", r"line 2: end 106 \(106 s\) is beyond the clip duration 100 s \(\+5 s tolerance\)"),
        ("factory1_worker001_00001,431,1,2,a\n", r"line 2: invalid clip id 'factory1_worker001_00001'"),
        (f"{CLIP},0,1,2,a\n", r"line 2: clip_duration_sec must be positive"),
        (f"{CLIP},431,1,2,a\n{CLIP},430,3,4,b\n", r"line 3: clip .* 430 s here but 431 s"),
        (f"{CLIP},431,1,2,a,extra\n", r"line 2: too many fields"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, body, problem):
    p = tmp_path / "truth.csv"
    p.write_text(HEADER + body)
    with pytest.raises(GroundTruthError, match=problem) as e:
        load_ground_truth(p)
    assert str(p) in str(e.value)


def test_missing_columns_and_files(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("clip_id,start,end\n")
    with pytest.raises(GroundTruthError, match=r"missing column\(s\) clip_duration_sec"):
        load_ground_truth(p)
    p.write_text("")
    with pytest.raises(GroundTruthError, match="missing column"):
        load_ground_truth(p)
    with pytest.raises(GroundTruthError, match="file not found"):
        load_ground_truth(tmp_path / "absent.csv")


def test_plain_seconds_blank_lines_and_header_only(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + f"{CLIP},100,10,20.5,x\n\n")
    assert load_ground_truth(p) == [GroundTruthSpan(CLIP, 100.0, 10.0, 20.5, "x")]
    p.write_text(HEADER)
    assert load_ground_truth(p) == []


def test_iou():
    assert iou((0, 10), (0, 10)) == 1.0
    assert iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert iou((0, 10), (10, 20)) == 0.0
    assert iou((0, 10), (2, 4)) == pytest.approx(0.2)


def test_evaluate_matches_and_reports_boundary_errors():
    truth = [GroundTruthSpan(CLIP, 431, 208, 262, "a"), GroundTruthSpan(CLIP, 431, 420, 433, "b")]
    spans = [(209, 264), (416, 431), (100, 110)]
    ev = evaluate(spans, truth)
    t0, t1 = ev.truth
    assert t0.matched and t0.detection == 0 and t0.best_iou == pytest.approx(53 / 56)
    assert (t0.start_error_sec, t0.end_error_sec) == (1, 2)
    assert t1.matched and (t1.start_error_sec, t1.end_error_sec) == (-4, -2)
    assert ev.unmatched_detections == [{"index": 2, "start_sec": 100, "end_sec": 110, "best_iou": 0.0}]
    assert (ev.precision, ev.recall) == (pytest.approx(2 / 3), 1.0)
    assert ev.f1 == pytest.approx(0.8)
    assert not ev.passed
    json.dumps(ev.to_dict(), allow_nan=False)


def test_matching_is_one_to_one():
    truth = [(0, 10)]
    ev = evaluate([(0, 9), (1, 10)], truth)  # both overlap it at IoU 0.9
    assert ev.true_positives == 1 and len(ev.unmatched_detections) == 1 and not ev.passed
    assert ev.matches == [(0, 0)]
    # a detection that covers two truths can match only one of them
    ev = evaluate([(0, 20)], [(0, 10), (0, 11)])
    assert ev.true_positives == 1 and ev.truth[1].matched and not ev.truth[0].matched


def test_below_threshold_is_not_a_match_but_errors_are_reported():
    ev = evaluate([(0, 10)], [(6, 16)])  # IoU 4/16
    t = ev.truth[0]
    assert not t.matched and t.best_iou == pytest.approx(0.25) and t.start_error_sec == -6
    assert ev.precision == 0.0 and ev.recall == 0.0 and ev.f1 == 0.0


def test_empty_cases():
    ev = evaluate([], [(0, 10)])
    assert (ev.precision, ev.recall, ev.f1, ev.passed) == (1.0, 0.0, 0.0, False)
    assert ev.truth[0].best_iou == 0.0 and ev.truth[0].start_error_sec is None
    ev = evaluate([(0, 10)], [])
    assert (ev.precision, ev.recall, ev.f1, ev.passed) == (0.0, 1.0, 0.0, False)
    ev = evaluate([], [])
    assert (ev.precision, ev.recall, ev.f1, ev.passed) == (1.0, 1.0, 1.0, True)
    with pytest.raises(GroundTruthError, match="iou_threshold"):
        evaluate([], [], iou_threshold=0)


def test_duration_tolerance_is_configurable(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(HEADER + f"{CLIP},431,07:00,07:13,ending work\n")
    assert load_ground_truth(p)[0].end_sec == 433.0  # kept as written, not clamped
    with pytest.raises(GroundTruthError, match="beyond the clip duration 431 s"):
        load_ground_truth(p, tolerance_sec=0.0)
