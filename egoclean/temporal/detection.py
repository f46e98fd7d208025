"""Anomalous-span detection: typicality score, EMA, Otsu + hysteresis (SPEC Phase 2).

1. S = cosine self-similarity of the flattened temporal tokens (never formed: see
   `egoclean.temporal.analysis.typicality`); 2. score = 1 - mean of row i of S without the
   diagonal; 3. EMA (s_0 = x_0; s_i = a x_i + (1 - a) s_(i-1)); 4. theta_on = Otsu
   threshold of the smoothed score, theta_off = median + off_fraction x (theta_on -
   median); 5. hysteresis with debounce; 6. spans shorter than `min_duration_sec`
   dropped. Everything the clip does not flag is a work span.

This module is the algorithm alone; a clip's detection end to end (the segments JSON,
pictures, ground-truth verdict, the CLI's report) is egoclean.temporal.segments.

Conventions (fixed here, tested):
- Otsu: `otsu_bins` equal-width bins over [min, max] of the smoothed score (as
  `np.histogram`); the split maximising the between-class variance (bin centres as
  values) wins, the first (lowest) one on ties, as OpenCV and scikit-image do.
  theta_on is the upper edge of the last bin of the lower class.
- "Above theta_on" is s >= theta_on (the upper Otsu class); "below theta_off" is
  s < theta_off.
- A window switches the detector on after `on_windows` consecutive windows above
  theta_on (the span starts at the first of them) and off after `off_windows`
  consecutive windows below theta_off (those windows are not part of the span).
- A span runs from its first window's time to the time of the first window after it,
  or to the last window's time when it runs to the end of the clip.
- Constant score (max - min within float rounding, FLAT_TOLERANCE): no threshold
  exists, no spans.
- Optional guard (`min_separation`, off by default): the Otsu classes of the smoothed
  score must be separated by at least this many pooled within-class standard
  deviations ((mean_above - mean_below) / sqrt(within-class variance)), otherwise the
  clip gets no spans. See docs/DETECTION.md for what it changes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from egoclean.temporal.analysis import typicality
from egoclean.embed.embeddings import Embeddings
from egoclean.core.errors import InvalidInputError
from egoclean.core.timecode import mmss

# Durations are times differences of float window times: allow rounding noise.
_EPS = 1e-9
# A score whose spread (max - min) is at most this fraction of its size (at least 1) is
# constant up to float rounding: two windows score the same in exact arithmetic but
# differ by an ulp or so after it, and numpy cannot cut such a range into `bins` bins.
# Scores are 1 - cosine in [0, 2], computed in float64: rounding stays far below 1e-9.
FLAT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class DetectionParams:
    """Every knob of the detector; the defaults are the SPEC's."""

    ema_alpha: float = 0.15
    otsu_bins: int = 256
    off_fraction: float = 0.5
    on_windows: int = 3
    off_windows: int = 3
    min_duration_sec: float = 3.0
    # Guard against flagging clips with no anomaly (None = off, the SPEC's method).
    min_separation: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not (0.0 < self.ema_alpha <= 1.0):
            problems.append(f"ema_alpha={self.ema_alpha} (must be in (0, 1])")
        if int(self.otsu_bins) != self.otsu_bins or self.otsu_bins < 2:
            problems.append(f"otsu_bins={self.otsu_bins} (must be an integer >= 2)")
        if not (0.0 <= self.off_fraction <= 1.0):
            problems.append(f"off_fraction={self.off_fraction} (must be in [0, 1])")
        for name in ("on_windows", "off_windows"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                problems.append(f"{name}={v} (must be an integer >= 1)")
        if not (self.min_duration_sec >= 0.0):
            problems.append(f"min_duration_sec={self.min_duration_sec} (must be >= 0)")
        if self.min_separation is not None and not (self.min_separation >= 0.0):
            problems.append(f"min_separation={self.min_separation} (must be >= 0 or None)")
        if problems:
            raise InvalidInputError("detection parameters: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Span:
    """A time span of a clip in seconds; peak_score is the max smoothed score (anomaly spans)."""

    start_sec: float
    end_sec: float
    peak_score: float | None = None

    @property
    def duration_sec(self) -> float:
        return self.end_sec - self.start_sec

    def to_dict(self) -> dict:
        d = {
            "start_sec": round(float(self.start_sec), 6),
            "end_sec": round(float(self.end_sec), 6),
            "duration_sec": round(float(self.duration_sec), 6),
            "start": mmss(self.start_sec),
            "end": mmss(self.end_sec),
        }
        if self.peak_score is not None:
            d["peak_score"] = float(self.peak_score)
        return d


@dataclass
class Detection:
    """The detector's result for one clip."""

    ts: np.ndarray  # (N,) window times, seconds
    score: np.ndarray  # (N,) 1 - typicality
    smoothed: np.ndarray  # (N,) EMA of score
    theta_on: float
    theta_off: float
    median: float
    is_anomaly: np.ndarray  # (N,) bool: window belongs to a reported span
    spans: list[Span]
    work_spans: list[Span]
    params: DetectionParams = field(default_factory=DetectionParams)
    separation: float | None = None  # Otsu class separation (see min_separation)
    suppressed: bool = False  # True when the guard removed this clip's spans

    def to_dict(self, series: bool = False) -> dict:
        """JSON-ready summary; `series=True` adds the per-window times and scores."""
        d: dict[str, Any] = {
            "windows": int(len(self.ts)),
            "theta_on": _num(self.theta_on),
            "theta_off": _num(self.theta_off),
            "median": _num(self.median),
            "separation": _num(self.separation),
            "suppressed": bool(self.suppressed),
            "params": self.params.to_dict(),
            "spans": [s.to_dict() for s in self.spans],
            "work_spans": [s.to_dict() for s in self.work_spans],
        }
        if series:
            d["ts"] = [float(v) for v in self.ts]
            d["score"] = [float(v) for v in self.score]
            d["smoothed"] = [float(v) for v in self.smoothed]
            d["is_anomaly"] = [bool(v) for v in self.is_anomaly]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Detection":
        """Rebuild a Detection from `to_dict(series=True)` (e.g. a segments JSON)."""
        missing = [k for k in ("ts", "score", "smoothed", "is_anomaly", "spans", "work_spans") if k not in d]
        if missing:
            raise InvalidInputError(f"detection document lacks {', '.join(missing)} (written without series=True?)")

        def spans(key: str) -> list[Span]:
            return [Span(s["start_sec"], s["end_sec"], s.get("peak_score")) for s in d[key]]

        def num(key: str, missing: float) -> float:  # to_dict writes non-finite values as null
            return missing if d.get(key) is None else float(d[key])

        return cls(
            ts=np.asarray(d["ts"], dtype=np.float64),
            score=np.asarray(d["score"], dtype=np.float64),
            smoothed=np.asarray(d["smoothed"], dtype=np.float64),
            theta_on=num("theta_on", math.inf),
            theta_off=num("theta_off", math.inf),
            median=num("median", math.nan),
            is_anomaly=np.asarray(d["is_anomaly"], dtype=bool),
            spans=spans("spans"),
            work_spans=spans("work_spans"),
            params=DetectionParams(**d.get("params", {})),
            separation=d.get("separation"),
            suppressed=bool(d.get("suppressed", False)),
        )


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def ema(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average: s_0 = x_0; s_i = alpha x_i + (1 - alpha) s_(i-1)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    acc = x[0]
    for i, v in enumerate(x):
        acc = alpha * v + (1.0 - alpha) * acc if i else v
        out[i] = acc
    return out


def otsu_threshold(x: np.ndarray, bins: int = 256) -> float | None:
    """Otsu's threshold of `x` over `bins` equal-width bins spanning [min, max].

    Returns the upper edge of the last bin of the lower class (first maximum of the
    between-class variance on ties), or None when x is empty or constant up to float
    rounding (see FLAT_TOLERANCE).
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return None
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= FLAT_TOLERANCE * max(1.0, abs(lo), abs(hi)):
        return None  # constant up to float rounding: no split means anything
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2.0
    w0 = np.cumsum(counts)[:-1].astype(np.float64)  # lower class = bins [0, k), k = 1..bins-1
    m0 = np.cumsum(counts * centres)[:-1]
    total_w, total_m = float(counts.sum()), float((counts * centres).sum())
    w1 = total_w - w0
    valid = (w0 > 0) & (w1 > 0)
    between = np.zeros_like(w0)
    mu0 = np.divide(m0, w0, out=np.zeros_like(m0), where=valid)
    mu1 = np.divide(total_m - m0, w1, out=np.zeros_like(m0), where=valid)
    between[valid] = w0[valid] * w1[valid] * (mu0[valid] - mu1[valid]) ** 2
    k = int(np.argmax(between)) + 1
    return float(edges[k])


def class_separation(x: np.ndarray, threshold: float) -> float | None:
    """(mean above - mean below) / pooled within-class SD of `x` split at `threshold`.

    Classes are x >= threshold and x < threshold. Infinite when both classes are
    constant; None when a class is empty.
    """
    x = np.asarray(x, dtype=np.float64)
    hi, lo = x[x >= threshold], x[x < threshold]
    if len(hi) == 0 or len(lo) == 0:
        return None
    within = (((hi - hi.mean()) ** 2).sum() + ((lo - lo.mean()) ** 2).sum()) / len(x)
    gap = float(hi.mean() - lo.mean())
    return math.inf if within <= 0 else gap / math.sqrt(within)


def hysteresis(
    s: np.ndarray, theta_on: float, theta_off: float, on_windows: int, off_windows: int
) -> list[tuple[int, int]]:
    """Runs of 'on' windows as (first, last_exclusive) index pairs (see the module doc)."""
    runs: list[tuple[int, int]] = []
    on = False
    above = below = 0
    start = 0
    for i, v in enumerate(s):
        if not on:
            above = above + 1 if v >= theta_on else 0
            if above >= on_windows:
                on, start, below = True, i - on_windows + 1, 0
        else:
            below = below + 1 if v < theta_off else 0
            if below >= off_windows:
                on, above = False, 0
                runs.append((start, i - off_windows + 1))
    if on:
        runs.append((start, len(s)))
    return runs


def spans_from_runs(
    ts: np.ndarray, smoothed: np.ndarray, runs: Iterable[tuple[int, int]], min_duration_sec: float
) -> tuple[list[Span], np.ndarray]:
    """Spans (with times and peaks) of the window runs lasting at least min_duration_sec."""
    n = len(ts)
    mask = np.zeros(n, dtype=bool)
    spans = []
    for a, b in runs:
        end = float(ts[b]) if b < n else float(ts[-1])
        span = Span(float(ts[a]), end, float(np.max(smoothed[a:b])))
        if span.duration_sec + _EPS < min_duration_sec:
            continue
        spans.append(span)
        mask[a:b] = True
    return spans, mask


def work_spans(spans: Sequence[Span], t0: float, t1: float) -> list[Span]:
    """The complement of `spans` within [t0, t1] (zero-length pieces left out)."""
    out, cur = [], float(t0)
    for s in sorted(spans, key=lambda s: s.start_sec):
        if s.start_sec > cur + _EPS:
            out.append(Span(cur, float(min(s.start_sec, t1))))
        cur = max(cur, s.end_sec)
    if t1 > cur + _EPS:
        out.append(Span(cur, float(t1)))
    return out


def detect_scores(ts: np.ndarray, score: np.ndarray, params: DetectionParams | None = None) -> Detection:
    """Steps 3-6 on a given per-window score (1 - typicality)."""
    params = params or DetectionParams()
    ts = np.asarray(ts, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if ts.shape != score.shape or ts.ndim != 1:
        raise InvalidInputError(f"detection: ts {ts.shape} and score {score.shape} must be equal 1-d shapes")
    if len(ts) == 0:
        raise InvalidInputError("detection: no windows")
    if not np.isfinite(score).all():
        raise InvalidInputError("detection: the score holds NaN or infinite values")
    if len(ts) > 1 and not np.all(np.diff(ts) > 0):
        raise InvalidInputError("detection: window times (ts) must be finite and strictly increasing")
    smoothed = ema(score, params.ema_alpha)
    median = float(np.median(smoothed))
    theta_on = otsu_threshold(smoothed, params.otsu_bins)
    separation: float | None = None
    if theta_on is None:  # constant score: nothing stands out
        theta_on = theta_off = math.inf
        runs: list[tuple[int, int]] = []
    else:
        theta_off = median + params.off_fraction * (theta_on - median)
        separation = class_separation(smoothed, theta_on)
        runs = hysteresis(smoothed, theta_on, theta_off, params.on_windows, params.off_windows)
    spans, mask = spans_from_runs(ts, smoothed, runs, params.min_duration_sec)
    suppressed = False
    if params.min_separation is not None and spans and (separation is None or separation < params.min_separation):
        spans, mask, suppressed = [], np.zeros(len(ts), dtype=bool), True
    return Detection(
        ts=ts,
        score=score,
        smoothed=smoothed,
        theta_on=float(theta_on),
        theta_off=float(theta_off),
        median=median,
        is_anomaly=mask,
        spans=spans,
        work_spans=work_spans(spans, float(ts[0]), float(ts[-1])),
        params=params,
        separation=separation,
        suppressed=suppressed,
    )


def anomaly_score(embeddings: Embeddings) -> np.ndarray:
    """Steps 1-2: 1 - typicality of the flattened temporal tokens (O(N) memory)."""
    if len(embeddings) < 2:
        # One window has nothing to be atypical against: define it as typical.
        return np.zeros(len(embeddings))
    return 1.0 - typicality(embeddings.temb)


def detect(embeddings: Embeddings, params: DetectionParams | None = None) -> Detection:
    """Detect anomalous spans in one clip's embeddings (a single window gives no spans)."""
    return detect_scores(embeddings.ts, anomaly_score(embeddings), params)
