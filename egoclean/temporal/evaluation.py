"""Ground-truth spans (CSV) and the evaluation of detected spans against them.

CSV columns: clip_id, clip_duration_sec, start, end, label; times are mm:ss, h:mm:ss
or plain seconds (decimals allowed). `load_ground_truth()` with no path reads the
packaged copy of the SPEC's table (`egoclean/data/ground_truth_seed.csv`).

Matching: a detection matches a ground-truth span when their temporal IoU is >=
the threshold (0.5); matching is one-to-one, greedy by descending IoU (ties: earlier
truth, then earlier detection). Conventions for empty sets: precision is 1 with no
detections, recall is 1 with no ground truth, F1 is 0 when precision + recall is 0.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from egoclean.core import defaults
from egoclean.core.errors import GroundTruthError
from egoclean.core.ids import is_clip_id

COLUMNS = ("clip_id", "clip_duration_sec", "start", "end", "label")
PACKAGED = "ground_truth_seed.csv"

# ASCII digits, matched whole (`\d` takes any Unicode digit, `$` a trailing newline).
_TIME_RE = re.compile(r"(?:([0-9]+):)?(?:([0-9]+):)?([0-9]+(?:\.[0-9]*)?)")
# Bounds of the CSV's structure: a label is a short description, a time a few characters;
# a table is read into memory whole.
MAX_LABEL_CHARS = 1000
MAX_TIME_CHARS = 32
MAX_CSV_BYTES = 64 << 20


@dataclass(frozen=True)
class GroundTruthSpan:
    """One span of a clip checked by watching the video."""

    clip_id: str
    clip_duration_sec: float
    start_sec: float
    end_sec: float
    label: str = ""

    @property
    def duration_sec(self) -> float:
        return self.end_sec - self.start_sec

    def to_dict(self) -> dict:
        return {
            "clip_id": self.clip_id,
            "clip_duration_sec": self.clip_duration_sec,
            "start_sec": self.start_sec,
            "end_sec": self.end_sec,
            "label": self.label,
        }


def parse_time(text: str) -> float:
    """`mm:ss`, `h:mm:ss` or plain seconds -> seconds; ValueError otherwise."""
    t = str(text).strip()
    m = _TIME_RE.fullmatch(t) if len(t) <= MAX_TIME_CHARS else None
    if not m:
        shown = t if len(t) <= MAX_TIME_CHARS else t[:MAX_TIME_CHARS] + "..."
        raise ValueError(f"unparseable time {shown!r} (expected mm:ss, h:mm:ss or seconds)")
    a, b, sec = m.groups()
    seconds = float(sec)
    if a is not None and b is not None:  # h:mm:ss
        h, mi = int(a), int(b)
    elif a is not None:  # mm:ss
        h, mi = 0, int(a)
    else:
        h, mi = 0, 0
    if (a is not None and seconds >= 60) or (b is not None and mi >= 60):
        raise ValueError(f"unparseable time {text!r}: seconds/minutes field must be below 60")
    return h * 3600.0 + mi * 60.0 + seconds


def _read_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        res = resources.files("egoclean").joinpath("data", PACKAGED)
        return res.read_text(encoding="utf-8"), f"packaged {PACKAGED}"
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CSV_BYTES:
            raise GroundTruthError(f"ground truth {p}: {p.stat().st_size} bytes, more than {MAX_CSV_BYTES}")
        return p.read_text(encoding="utf-8-sig"), str(p)
    except FileNotFoundError:
        raise GroundTruthError(f"ground truth {p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GroundTruthError(f"ground truth {p}: cannot read ({type(e).__name__}: {e})") from None


def load_ground_truth(
    path: str | os.PathLike | None = None, tolerance_sec: float = defaults.SPAN_END_TOLERANCE_SEC
) -> list[GroundTruthSpan]:
    """Read a ground-truth CSV (None: the packaged seed table); errors name file and line.

    An end up to `tolerance_sec` past clip_duration_sec is kept as written.
    """
    text, name = _read_text(path)
    # strict: a stray quote is an error, not a field that swallows the lines after it.
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise GroundTruthError(f"ground truth {name}: line 1: {e}") from None
    missing = [c for c in COLUMNS if c not in header and c != "label"]
    if missing:
        raise GroundTruthError(
            f"ground truth {name}: missing column(s) {', '.join(missing)} "
            f"(header must be {','.join(COLUMNS)}; found {','.join(header) or 'nothing'})"
        )
    reader.fieldnames = header
    out: list[GroundTruthSpan] = []
    durations: dict[str, float] = {}
    rows = iter(reader)
    while True:
        first = reader.line_num + 1  # the line this row starts on
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as e:
            hint = (f" (labels are at most {MAX_LABEL_CHARS} characters)" if "field limit" in str(e)
                    else " (an unterminated quote?)")
            raise GroundTruthError(f"ground truth {name}: line {first}: {e}{hint}") from None
        line = reader.line_num

        def bad(problem: str, line: int = first) -> GroundTruthError:
            return GroundTruthError(f"ground truth {name}: line {line}: {problem}")

        if line != first:
            raise bad(f"a quoted field runs on to line {line} (an unterminated quote?); fields cannot span lines")

        if all(not (v or "").strip() for k, v in row.items() if k is not None):
            continue  # blank line
        if None in row:
            raise bad(f"too many fields ({len(header) + len(row[None])} for {len(header)} columns)")
        values = {k: (row.get(k) or "").strip() for k in COLUMNS}
        if len(values["label"]) > MAX_LABEL_CHARS:
            raise bad(f"label is {len(values['label'])} characters long (at most {MAX_LABEL_CHARS})")
        clip = values["clip_id"]
        if not is_clip_id(clip):
            raise bad(f"invalid clip id {clip[:60]!r} (expected factoryXXX_workerYYY_NNNNN)")
        parsed = {}
        for col in ("clip_duration_sec", "start", "end"):
            try:
                parsed[col] = parse_time(values[col])
            except ValueError as e:
                raise bad(f"column {col}: {e}") from None
        dur, start, end = parsed["clip_duration_sec"], parsed["start"], parsed["end"]
        if not dur > 0:
            raise bad(f"clip_duration_sec must be positive, got {values['clip_duration_sec']!r}")
        if not end > start:
            raise bad(f"end {values['end']} is not after start {values['start']}")
        if end > dur + tolerance_sec:
            raise bad(
                f"end {values['end']} ({end:g} s) is beyond the clip duration {dur:g} s "
                f"(+{tolerance_sec:g} s tolerance)"
            )
        if clip in durations and not math.isclose(durations[clip], dur):
            raise bad(f"clip {clip} has duration {dur:g} s here but {durations[clip]:g} s on an earlier line")
        durations[clip] = dur
        out.append(GroundTruthSpan(clip, dur, start, end, values["label"]))
    return out


def truth_for(truth: Sequence[GroundTruthSpan], clip_id: str) -> list[GroundTruthSpan]:
    """The ground-truth spans of one clip."""
    return [t for t in truth if t.clip_id == clip_id]


def _interval(x: Any) -> tuple[float, float]:
    if hasattr(x, "start_sec") and hasattr(x, "end_sec"):
        return float(x.start_sec), float(x.end_sec)
    a, b = x
    return float(a), float(b)


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two [start, end] intervals (0 when both are empty)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0]) if inter > 0 else (a[1] - a[0]) + (b[1] - b[0])
    return inter / union if union > 0 else 0.0


@dataclass
class TruthResult:
    """How one ground-truth span fared."""

    start_sec: float
    end_sec: float
    label: str
    best_iou: float  # best IoU with any detection (0 when none overlaps)
    matched: bool
    detection: int | None  # index of the matched detection, else of the best-IoU one
    start_error_sec: float | None  # detection start - truth start (signed)
    end_error_sec: float | None  # detection end - truth end (signed)


@dataclass
class Evaluation:
    """Detected spans against ground truth for one clip."""

    truth: list[TruthResult]
    unmatched_detections: list[dict]  # {"index", "start_sec", "end_sec", "best_iou"}
    n_detections: int
    iou_threshold: float
    matches: list[tuple[int, int]] = field(default_factory=list)  # (truth index, detection index)

    @property
    def true_positives(self) -> int:
        return len(self.matches)

    @property
    def precision(self) -> float:
        return self.true_positives / self.n_detections if self.n_detections else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / len(self.truth) if self.truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def passed(self) -> bool:
        """The reference bar: every truth span matched, no detection without one."""
        return all(t.matched for t in self.truth) and not self.unmatched_detections

    def to_dict(self) -> dict:
        return {
            "iou_threshold": self.iou_threshold,
            "n_truth": len(self.truth),
            "n_detections": self.n_detections,
            "true_positives": self.true_positives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "passed": self.passed,
            "truth": [t.__dict__ for t in self.truth],
            "unmatched_detections": self.unmatched_detections,
        }

    def report_lines(self) -> list[str]:
        """Human-readable lines (times as mm:ss)."""
        from egoclean.core.timecode import mmss

        lines = []
        for t in self.truth:
            what = "matched" if t.matched else "MISSED"
            errs = (
                f", start {t.start_error_sec:+.1f} s, end {t.end_error_sec:+.1f} s"
                if t.start_error_sec is not None
                else ""
            )
            lines.append(f"truth {mmss(t.start_sec)}-{mmss(t.end_sec)} {t.label!r}: {what}, IoU {t.best_iou:.2f}{errs}")
        for d in self.unmatched_detections:
            lines.append(f"detection {mmss(d['start_sec'])}-{mmss(d['end_sec'])}: no ground-truth span "
                         f"(best IoU {d['best_iou']:.2f})")
        lines.append(
            f"precision {self.precision:.2f} recall {self.recall:.2f} F1 {self.f1:.2f} "
            f"({self.true_positives}/{len(self.truth)} truth matched, {self.n_detections} detections, "
            f"IoU >= {self.iou_threshold}): {'PASS' if self.passed else 'FAIL'}"
        )
        return lines


def evaluate(
    spans: Sequence[Any], truth: Sequence[Any], iou_threshold: float = defaults.IOU_THRESHOLD
) -> Evaluation:
    """Match detected `spans` to `truth` (objects with start_sec/end_sec, or (start, end) pairs)."""
    if not (0.0 < iou_threshold <= 1.0):
        raise GroundTruthError(f"evaluation: iou_threshold must be in (0, 1], got {iou_threshold}")
    det = [_interval(s) for s in spans]
    tru = [_interval(t) for t in truth]
    ious = [[iou(t, d) for d in det] for t in tru]
    pairs = sorted(
        ((ious[i][j], i, j) for i in range(len(tru)) for j in range(len(det)) if ious[i][j] >= iou_threshold),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_t: dict[int, int] = {}
    used_d: set[int] = set()
    for _, i, j in pairs:
        if i not in used_t and j not in used_d:
            used_t[i] = j
            used_d.add(j)
    results = []
    for i, (t, obj) in enumerate(zip(tru, truth)):
        best_j = max(range(len(det)), key=lambda j: ious[i][j], default=None)
        best = ious[i][best_j] if best_j is not None else 0.0
        j = used_t.get(i, best_j if best > 0 else None)
        results.append(
            TruthResult(
                start_sec=t[0],
                end_sec=t[1],
                label=getattr(obj, "label", ""),
                best_iou=best,
                matched=i in used_t,
                detection=j,
                start_error_sec=det[j][0] - t[0] if j is not None else None,
                end_error_sec=det[j][1] - t[1] if j is not None else None,
            )
        )
    unmatched = [
        {
            "index": j,
            "start_sec": d[0],
            "end_sec": d[1],
            "best_iou": max((ious[i][j] for i in range(len(tru))), default=0.0),
        }
        for j, d in enumerate(det)
        if j not in used_d
    ]
    return Evaluation(
        truth=results,
        unmatched_detections=unmatched,
        n_detections=len(det),
        iou_threshold=iou_threshold,
        matches=sorted(used_t.items()),
    )
