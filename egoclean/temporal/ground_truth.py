"""The effective ground truth, and the one verdict on a clip's detections against it.

Sources: the packaged seed table (`egoclean/data/ground_truth_seed.csv`, unless left out)
and any configured CSVs, in that order. The rules, each defined here and nowhere else:

- Precedence: a clip's spans come from the last source that has the clip, so a
  configured CSV replaces the seed's spans for its clips (it does not add to them).
- One file, one source: a CSV configured under two spellings of its path (`gt.csv`,
  `./gt.csv`, a symlink) is one source, counted once (at its last position).
- A span listed twice in its source is one span (it cannot be matched twice).
- Judging: a clip whose duration differs from the one its labels were made on by more
  than `defaults.LABELLED_DURATION_TOLERANCE_SEC` is not the labelled clip (e.g. a
  synthetic clip reusing a real id): its detections are not judged. Otherwise
  `egoclean.temporal.evaluation.evaluate` matches detections one-to-one at
  `defaults.IOU_THRESHOLD`.

The asset check, the detection picture, the store's `detection_eval` view and
`egoclean detect` all take their spans from `GroundTruth` and their verdict from `judge`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from egoclean.core import defaults
from egoclean.temporal.evaluation import PACKAGED, Evaluation, GroundTruthSpan, evaluate, load_ground_truth
from egoclean.temporal.evaluation import iou as interval_iou


def source_name(path: str | os.PathLike) -> str:
    """The name a configured CSV goes by: its resolved absolute path (one name per file)."""
    return os.path.realpath(os.path.expanduser(str(path)))


def _configured(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Configured CSVs by source name, each once, at its last position (precedence order)."""
    names = [source_name(p) for p in paths if str(p)]
    return [n for i, n in enumerate(names) if n not in names[i + 1:]]


def fingerprint(include_seed: bool, paths: Sequence[str | os.PathLike]) -> str:
    """A cheap identity of a configuration and its files (names, sizes, mtimes; no parsing):
    it changes when the configuration or any file changes."""
    parts: list[Any] = [bool(include_seed), PACKAGED if include_seed else None]
    for name in _configured(paths):
        try:
            st = os.stat(name)
            parts.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            parts.append([name, None])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class GroundTruth:
    """The ground-truth sources in precedence order (lowest first), and the spans in effect."""

    sources: tuple[tuple[str, tuple[GroundTruthSpan, ...]], ...] = ()
    fingerprint: str = ""
    _by_clip: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, include_seed: bool = True, paths: Sequence[str | os.PathLike] = ()) -> "GroundTruth":
        """Read the seed (unless left out) and the configured CSVs (GroundTruthError names a bad file)."""
        sources = []
        if include_seed:
            sources.append((defaults.SEED_SOURCE, tuple(load_ground_truth(None))))
        for name in _configured(paths):
            sources.append((name, tuple(load_ground_truth(name))))
        return cls.of(sources, fingerprint(include_seed, paths))

    @classmethod
    def of(cls, sources: Sequence[tuple[str, Sequence[GroundTruthSpan]]], fp: str = "") -> "GroundTruth":
        """From (source name, spans) pairs in precedence order, lowest first."""
        by_clip: dict[str, tuple[str, list[GroundTruthSpan]]] = {}
        for name, spans in sources:
            mine: dict[str, list[GroundTruthSpan]] = {}
            for sp in spans:
                kept = mine.setdefault(str(sp.clip_id), [])
                if not any((k.start_sec, k.end_sec) == (sp.start_sec, sp.end_sec) for k in kept):
                    kept.append(sp)
            by_clip.update({clip: (name, kept) for clip, kept in mine.items()})
        return cls(tuple((n, tuple(s)) for n, s in sources), fp, by_clip)

    def clips(self) -> list[str]:
        """The clips with ground truth in effect, sorted."""
        return sorted(self._by_clip)

    def spans(self, clip_id: str) -> list[GroundTruthSpan]:
        """The spans in effect for a clip (empty when none), in time order."""
        return sorted(self._by_clip.get(str(clip_id), ("", []))[1], key=lambda s: (s.start_sec, s.end_sec))

    def source_of(self, clip_id: str) -> str | None:
        """The source a clip's spans come from (None when it has none)."""
        entry = self._by_clip.get(str(clip_id))
        return entry[0] if entry else None

    def rows(self) -> list[tuple[GroundTruthSpan, str]]:
        """Every span in effect with its source: what the store's ground_truth table holds."""
        return [(sp, self.source_of(c)) for c in self.clips() for sp in self.spans(c)]


@dataclass
class Verdict:
    """The one judgement of a clip's detections against its ground truth."""

    clip_id: str
    truth: list[GroundTruthSpan]
    judged: bool
    reason: str | None = None  # why not judged
    evaluation: Evaluation | None = None
    clip_duration_sec: float | None = None
    detections: list[tuple[float, float]] = field(default_factory=list)

    @property
    def labelled_duration_sec(self) -> float | None:
        return float(self.truth[0].clip_duration_sec) if self.truth else None

    @property
    def passed(self) -> bool:
        """Judged and passed; a clip without ground truth passes (nothing to judge against)."""
        if not self.truth:
            return True
        return bool(self.judged and self.evaluation is not None and self.evaluation.passed)

    def summary(self) -> str:
        """One line: what was judged, and the outcome."""
        if not self.truth:
            return f"no ground truth for clip {self.clip_id}"
        if not self.judged:
            return self.reason or "not judged"
        ev = self.evaluation
        return (f"{ev.true_positives}/{len(ev.truth)} ground-truth span(s) matched, "
                f"{len(ev.unmatched_detections)} detection(s) without ground truth (IoU >= {ev.iou_threshold})")

    def match_rows(self, source: str | None) -> list[dict]:
        """Rows of the store's detection_matches table: one per truth span, one per
        detection matching none (judged clips only)."""
        rows = []
        if not self.judged or self.evaluation is None:
            for t in self.truth:
                rows.append(_row(self.clip_id, "not judged", t.label, source, (t.start_sec, t.end_sec),
                                 None, None, False))
            return rows
        ev = self.evaluation
        for t in ev.truth:
            # the matched detection, else the best-overlapping one (None when nothing overlaps)
            det = None if t.detection is None else self.detections[t.detection]
            if ev.n_detections == 0:
                iou = None
            else:
                iou = interval_iou((t.start_sec, t.end_sec), det) if t.matched else t.best_iou
            rows.append(_row(self.clip_id, "matched" if t.matched else "missed", t.label, source,
                             (t.start_sec, t.end_sec), det, iou, t.matched))
        for d in ev.unmatched_detections:
            rows.append(_row(self.clip_id, "false positive", None, None, None, (d["start_sec"], d["end_sec"]),
                             d["best_iou"], False))
        return rows


def _row(clip_id, status, label, source, gt, det, iou, matched) -> dict:
    return {"clip_id": clip_id, "status": status, "label": label, "source": source,
            "gt_start_sec": gt[0] if gt else None, "gt_end_sec": gt[1] if gt else None,
            "det_start_sec": det[0] if det else None, "det_end_sec": det[1] if det else None,
            "iou": iou, "matched": bool(matched)}


def judge(clip_id: str, detections: Sequence[Any], truth: Sequence[GroundTruthSpan],
          clip_duration_sec: float | None) -> Verdict:
    """The verdict on `detections` (spans or (start, end) pairs) of a clip against `truth`.

    `clip_duration_sec` None (unknown: the clip was never materialized) judges anyway."""
    truth = sorted(truth, key=lambda s: (s.start_sec, s.end_sec))
    dets = [(float(d.start_sec), float(d.end_sec)) if hasattr(d, "start_sec") else (float(d[0]), float(d[1]))
            for d in detections]
    v = Verdict(str(clip_id), list(truth), judged=True, clip_duration_sec=clip_duration_sec, detections=dets)
    if not truth:
        return v
    labelled = float(truth[0].clip_duration_sec)
    if clip_duration_sec is not None and abs(float(clip_duration_sec) - labelled) > \
            defaults.LABELLED_DURATION_TOLERANCE_SEC:
        v.judged = False
        v.reason = (f"clip {clip_id} is {float(clip_duration_sec):.1f} s long but its ground truth was labelled "
                    f"on a {labelled:.1f} s clip: not the labelled video, so the detections are not judged")
        return v
    v.evaluation = evaluate(dets, truth, iou_threshold=defaults.IOU_THRESHOLD)
    return v


def seed_path() -> Path:
    """Where the packaged seed table is (for messages)."""
    return Path(__file__).with_name("data") / PACKAGED
