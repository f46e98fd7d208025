"""Training episodes of one clip: its clean work spans, cut at work-cycle boundaries.

Pure planning (numpy only): from a clip's work and anomaly spans and the
temporal-token self-similarity matrix of its windows, decide which time ranges
become episodes. Nothing here reads or writes video.

1. **Clean spans.** Each work span loses `margin_sec` at every end that touches an
   anomalous span (detections start and end on a 1 s window grid, and a window is
   ~2 s long, so the frames next to a detection are the least trustworthy). A work
   span that ends at the last window is extended to the clip's end (the last window
   covers those frames). Spans shorter than `min_episode_sec` are skipped with that
   reason.
2. **The work cycle.** Over the window pairs (i, j) that both lie in clean spans,
   the similarity S_ij minus its smooth trend over the lag t_j - t_i is correlated with
   cos(2 pi (t_j - t_i) / P) for P on a 0.01 s grid; the best P is the clip's period and
   the correlation its *strength*. Pairs at every lag (across spans too), not only the
   integer lags of one span, pin P down to a few hundredths of a second. A strength
   below `min_period_strength` (or spans too short to hold two cycles) means no clear
   period.
3. **The cut phase.** Among phases phi in [0, P), the one whose cycle starts
   phi + mP are most alike (the mean bilinearly interpolated similarity between every
   pair of cycle starts in the clean spans) is where episodes are cut: the most
   similar moment of the cycle, so episodes of one clip start at the same point of
   the work and line up.
4. **Episodes.** With a clear period (and `split_cycles`), each clean span is cut at
   its cycle starts into groups of `cycles_per_episode` whole cycles (fewer when that
   exceeds `max_episode_sec`); the partial cycles before the first and after the last
   cut are skipped ("partial cycle"). Without one, a span is cut into the fewest
   equal pieces of at most `max_episode_sec`.

Times are seconds in the source clip. Frame ranges are the frames whose times
i / fps lie in [start, end).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from egoclean.core.errors import InvalidInputError

_EPS = 1e-6


@dataclass(frozen=True)
class EpisodeParams:
    """How work spans become episodes (defaults are stated in README "Export")."""

    min_episode_sec: float = 2.0  # shorter pieces are skipped, with the reason recorded
    max_episode_sec: float = 30.0  # longest episode (fixed-length pieces, or fewer cycles)
    margin_sec: float = 2.0  # dropped from a work span's end where it touches an anomaly
    split_cycles: bool = True  # cut at work-cycle boundaries where the clip has a clear period
    cycles_per_episode: int = 1  # whole cycles per episode
    min_period_sec: float = 2.5  # shortest period looked for (the window grid is 1 s: Nyquist 2 s)
    min_period_strength: float = 0.2  # correlation with a cosine of the period that counts as clear

    def __post_init__(self) -> None:
        """Raise InvalidInputError naming the first bad option."""
        for name in ("min_episode_sec", "max_episode_sec", "margin_sec", "min_period_sec", "min_period_strength"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise InvalidInputError(f"episode option {name}={v!r}: must be a finite number >= 0")
        if self.max_episode_sec <= 0 or self.max_episode_sec < self.min_episode_sec:
            raise InvalidInputError(
                f"episode options: max_episode_sec={self.max_episode_sec} must be > 0 and >= "
                f"min_episode_sec={self.min_episode_sec}"
            )
        if not isinstance(self.cycles_per_episode, int) or self.cycles_per_episode < 1:
            raise InvalidInputError(
                f"episode option cycles_per_episode={self.cycles_per_episode!r}: must be an integer >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cycle:
    """A clip's repeating work cycle: period, cut phase (a cycle starts at phase + m * period), strength."""

    period_sec: float
    phase_sec: float
    strength: float

    def starts(self, t0: float, t1: float) -> list[float]:
        """Cycle starts in [t0, t1]."""
        m0 = math.ceil((t0 - self.phase_sec) / self.period_sec - _EPS)
        out = []
        m = m0
        while (t := self.phase_sec + m * self.period_sec) <= t1 + _EPS:
            out.append(float(t))
            m += 1
        return out


@dataclass(frozen=True)
class Episode:
    """One planned episode: a time range of the source clip."""

    start_sec: float
    end_sec: float
    span_index: int  # which clean work span of the clip it comes from
    cycle_index: int  # index of its first cycle within the clip (-1: fixed-length piece)
    n_cycles: int  # whole cycles it holds (0: fixed-length piece)

    @property
    def duration_sec(self) -> float:
        return self.end_sec - self.start_sec

    def frames(self, fps: float) -> tuple[int, int]:
        """The frame range [first, end) whose times i / fps lie in [start, end)."""
        return frame_range(self.start_sec, self.end_sec, fps)


@dataclass(frozen=True)
class Skipped:
    """A time range that is not exported, and why."""

    start_sec: float
    end_sec: float
    reason: str


@dataclass
class EpisodePlan:
    """The episodes of one clip, what was skipped and the cycle found (None: no clear period)."""

    episodes: list[Episode]
    skipped: list[Skipped]
    clean_spans: list[tuple[float, float]]
    cycle: Cycle | None
    params: EpisodeParams = field(default_factory=EpisodeParams)

    @property
    def kept_sec(self) -> float:
        return float(sum(e.duration_sec for e in self.episodes))


def frame_range(start_sec: float, end_sec: float, fps: float) -> tuple[int, int]:
    """Frames i with start <= i / fps < end (times rounded to the frame grid first)."""
    a = int(math.ceil(round(start_sec * fps, 6)))
    b = int(math.ceil(round(end_sec * fps, 6)))
    return a, max(a, b)


def clean_spans(
    work: Sequence[tuple[float, float]],
    anomalies: Sequence[tuple[float, float]],
    duration_sec: float,
    last_window_sec: float | None,
    margin_sec: float,
) -> list[tuple[float, float]]:
    """Work spans shrunk by `margin_sec` where they touch an anomaly, the last one extended to the clip end."""
    out = []
    for a, b in sorted((float(a), float(b)) for a, b in work):
        if last_window_sec is not None and b >= last_window_sec - _EPS:
            b = max(b, float(duration_sec))
        b = min(b, float(duration_sec))
        touches = [(s, e) for s, e in anomalies]
        if any(abs(e - a) <= _EPS or (s <= a + _EPS <= e) for s, e in touches):
            a += margin_sec
        if any(abs(s - b) <= _EPS or (s - _EPS <= b <= e) for s, e in touches):
            b -= margin_sec
        if b > a + _EPS:
            out.append((a, b))
    return out


def _span_masks(ts: np.ndarray, window_sec: float, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """(len(ts),) span index of each window lying wholly inside a span, -1 elsewhere."""
    label = np.full(len(ts), -1, dtype=np.int64)
    for k, (a, b) in enumerate(spans):
        label[(ts >= a - _EPS) & (ts + window_sec <= b + _EPS)] = k
    return label


def _pairs(sim: np.ndarray, ts: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lags and similarities of the window pairs i < j that both lie in clean spans.

    Pairs across spans count too: the same worker repeats the same cycle, and their
    long lags pin the period down far better than one span's short ones."""
    i, j = np.triu_indices(len(ts), 1)
    m = (label[i] >= 0) & (label[j] >= 0)
    return ts[j[m]] - ts[i[m]], sim[i[m], j[m]].astype(np.float64)


def estimate_period(
    sim: np.ndarray,
    ts: np.ndarray,
    spans: Sequence[tuple[float, float]],
    window_sec: float,
    min_period_sec: float = EpisodeParams.min_period_sec,
    max_period_sec: float | None = None,
    grid_sec: float = 0.01,
) -> tuple[float, float] | None:
    """(period, strength) of the repetition inside `spans`, or None when too little data.

    See the module docstring (step 2). `sim` is the (N, N) similarity of the windows
    starting at `ts`; only windows wholly inside one span take part.
    """
    ts = np.asarray(ts, dtype=np.float64)
    label = _span_masks(ts, window_sec, spans)
    lag, s = _pairs(np.asarray(sim), ts, label)
    # A period must repeat at least twice inside one span to be seen as one.
    longest = max((float(np.ptp(ts[label == k])) for k in set(label[label >= 0].tolist())), default=0.0)
    hi = longest / 2.0 if max_period_sec is None else min(max_period_sec, longest / 2.0)
    if len(lag) < 8 or hi < min_period_sec:
        return None
    # The similarity falls with the lag whatever the content: remove that smooth trend.
    deg = 2 if len(np.unique(lag)) > 3 else 1
    resid = s - np.polyval(np.polyfit(lag, s, deg), lag)
    sd = float(resid.std())
    if sd <= 1e-12:
        return None
    def corr(periods: np.ndarray) -> np.ndarray:
        out = np.empty(len(periods))
        for idx in np.array_split(np.arange(len(periods)), max(1, len(periods) // 64)):
            c = np.cos(2 * np.pi * lag[None, :] / periods[idx, None])
            cc = c - c.mean(axis=1, keepdims=True)
            out[idx] = (cc @ (resid - resid.mean())) / (np.sqrt((cc * cc).sum(axis=1)) * sd * math.sqrt(len(lag)))
        return out

    periods = np.arange(min_period_sec, hi + _EPS, grid_sec)
    r = corr(periods)
    k = int(np.argmax(r))
    best_p, best_r = float(periods[k]), float(r[k])
    return best_p, best_r


def _interp_sim(sim: np.ndarray, ts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of the similarity at times (a, b) on the window grid `ts`."""
    n = len(ts)
    fa = np.interp(a, ts, np.arange(n))
    fb = np.interp(b, ts, np.arange(n))
    ia, ib = np.clip(np.floor(fa).astype(int), 0, n - 2), np.clip(np.floor(fb).astype(int), 0, n - 2)
    ua, ub = fa - ia, fb - ib
    return ((1 - ua) * (1 - ub) * sim[ia, ib] + ua * (1 - ub) * sim[ia + 1, ib]
            + (1 - ua) * ub * sim[ia, ib + 1] + ua * ub * sim[ia + 1, ib + 1])


def estimate_phase(
    sim: np.ndarray, ts: np.ndarray, spans: Sequence[tuple[float, float]], window_sec: float, period_sec: float,
    grid_sec: float = 0.05,
) -> float:
    """The cut phase in [0, period): the one whose cycle starts are most alike (step 3)."""
    ts = np.asarray(ts, dtype=np.float64)
    sim = np.asarray(sim)
    best_phi, best = 0.0, -np.inf
    for phi in np.arange(0.0, period_sec, grid_sec):
        cyc = Cycle(period_sec, float(phi), 0.0)
        x = np.asarray([t for a, b in spans for t in cyc.starts(a, b - window_sec)
                        if ts[0] - _EPS <= t <= ts[-1] + _EPS])
        if len(x) >= 2:
            i, j = np.triu_indices(len(x), 1)
            score = float(np.mean(_interp_sim(sim, ts, x[i], x[j])))
            if score > best:
                best_phi, best = float(phi), score
    return best_phi


def find_cycle(
    sim: np.ndarray | None, ts: np.ndarray | None, spans: Sequence[tuple[float, float]], window_sec: float,
    params: EpisodeParams,
) -> Cycle | None:
    """The clip's work cycle inside its clean spans, or None without a clear period."""
    if sim is None or ts is None or len(ts) < 4:
        return None
    sim = np.asarray(sim)
    if sim.shape != (len(ts), len(ts)):
        raise InvalidInputError(f"similarity matrix {sim.shape} does not match {len(ts)} window times")
    found = estimate_period(sim, ts, spans, window_sec, params.min_period_sec,
                            max_period_sec=params.max_episode_sec)
    if found is None or found[1] < params.min_period_strength:
        return None
    period, strength = found
    return Cycle(period, estimate_phase(sim, ts, spans, window_sec, period), strength)


def _fixed_pieces(a: float, b: float, params: EpisodeParams, span_index: int) -> list[Episode]:
    n = max(1, math.ceil((b - a) / params.max_episode_sec - _EPS))
    edges = np.linspace(a, b, n + 1)
    return [Episode(float(x), float(y), span_index, -1, 0) for x, y in zip(edges[:-1], edges[1:])]


def plan_episodes(
    work: Sequence[tuple[float, float]],
    anomalies: Sequence[tuple[float, float]],
    duration_sec: float,
    *,
    sim: np.ndarray | None = None,
    ts: np.ndarray | None = None,
    window_sec: float = 0.0,
    params: EpisodeParams | None = None,
) -> EpisodePlan:
    """The episodes of one clip (see the module docstring).

    `work` / `anomalies` are (start, end) seconds (the segments table); `sim` and `ts`
    the temporal-token similarity matrix and its window times (similarity_matrix);
    `window_sec` one window's length (64 frames / fps).
    """
    params = params or EpisodeParams()
    if not work:
        return EpisodePlan([], [Skipped(0.0, float(duration_sec), "no work spans")], [], None, params)
    last = None if ts is None or len(ts) == 0 else float(np.max(ts))
    spans = clean_spans(work, anomalies, duration_sec, last, params.margin_sec)
    skipped: list[Skipped] = []
    kept: list[tuple[float, float]] = []
    for a, b in spans:
        if b - a + _EPS < params.min_episode_sec:
            skipped.append(Skipped(a, b, f"work span shorter than the minimum episode ({params.min_episode_sec:g} s)"))
        else:
            kept.append((a, b))
    cycle = find_cycle(sim, ts, kept, window_sec, params) if params.split_cycles and kept else None
    episodes: list[Episode] = []
    for k, (a, b) in enumerate(kept):
        if cycle is None:
            pieces = _fixed_pieces(a, b, params, k)
        else:
            starts = cycle.starts(a, b)
            n = max(1, min(params.cycles_per_episode, int(params.max_episode_sec // cycle.period_sec)))
            pieces = []
            if len(starts) < 2:
                skipped.append(Skipped(a, b, "no whole work cycle in the span"))
                continue
            if starts[0] > a + _EPS:
                skipped.append(Skipped(a, starts[0], "partial cycle"))
            m0 = int(round((starts[0] - cycle.phase_sec) / cycle.period_sec))
            i = 0
            while i + 1 < len(starts):
                j = min(i + n, len(starts) - 1)
                pieces.append(Episode(starts[i], starts[j], k, m0 + i, j - i))
                i = j
            if starts[-1] < b - _EPS:
                skipped.append(Skipped(starts[-1], b, "partial cycle"))
        for ep in pieces:
            if ep.duration_sec + _EPS < params.min_episode_sec:
                why = f"shorter than the minimum episode ({params.min_episode_sec:g} s)"
                skipped.append(Skipped(ep.start_sec, ep.end_sec, why))
            else:
                episodes.append(ep)
    return EpisodePlan(episodes, skipped, kept, cycle, params)


def split_at_gaps(traj, eps: list, fps: float) -> tuple[list, list[dict]]:
    """Episodes `(ep, (a, b))` split where the camera's tracking stops or a new segment begins
    (an episode never spans a gap); returns the pieces kept and the frames dropped, with the reason."""
    from egoclean.motion.episodes import tracked_runs  # at use: the camera motion stage

    kept, dropped = [], []
    for ep, (a, b) in eps:
        keep, drop = tracked_runs(traj, a, b)
        kept += [(ep, run) for run in keep]
        for x, y in drop:
            why = "tracking gap (no camera pose)" if not traj.tracked[x] else "too short between tracking gaps"
            dropped.append({"start_sec": round(x / fps, 3), "end_sec": round(y / fps, 3), "reason": why})
    return kept, dropped


def plan_table(plan: EpisodePlan, fps: float, traj=None) -> dict:
    """A clip's episode plan as JSON-ready rows (what training_episodes stores and shows); with the
    clip's camera trajectory `traj`, episodes split at tracking gaps as the export splits them."""
    eps = [(e, e.frames(fps)) for e in plan.episodes]
    gaps: list[dict] = []
    if traj is not None:
        n = len(traj)
        eps, gaps = split_at_gaps(traj, [(e, (a, min(b, n))) for e, (a, b) in eps if min(b, n) - a >= 2], fps)
    return {
        "cycle": None if plan.cycle is None else {"period_sec": plan.cycle.period_sec,
                                                  "phase_sec": plan.cycle.phase_sec,
                                                  "strength": plan.cycle.strength},
        "params": plan.params.to_dict(),
        "episodes": [{"start_sec": a / fps if traj is not None else e.start_sec,
                      "end_sec": b / fps if traj is not None else e.end_sec, "frames": [a, b],
                      "cycle_index": e.cycle_index, "n_cycles": e.n_cycles} for e, (a, b) in eps],
        "skipped": [{"start_sec": s.start_sec, "end_sec": s.end_sec, "reason": s.reason} for s in plan.skipped] + gaps,
        "kept_sec": plan.kept_sec if traj is None else sum(b - a for _, (a, b) in eps) / fps,
    }
