"""Episode planning: period and cut phase from a similarity matrix, margins, minimum/maximum lengths."""

from __future__ import annotations

import numpy as np
import pytest

from egoclean.export.episodes import (
    Cycle,
    EpisodeParams,
    clean_spans,
    estimate_period,
    find_cycle,
    frame_range,
    plan_episodes,
)
from egoclean.core.errors import InvalidInputError

WINDOW = 64 / 30


def periodic_sim(ts: np.ndarray, period: float, quiet_phase: float, seed: int = 0) -> np.ndarray:
    """Cosine similarity of features that repeat with `period`; the cycle is most alike
    across repetitions at `quiet_phase` (less noise there), as a work cycle's fixed moment is."""
    rng = np.random.default_rng(seed)
    ang = 2 * np.pi * ts / period
    w = {1: 1.0, 2: 0.8, 3: 0.6}  # sharp features: strong harmonics
    base = np.stack([w[k] * np.cos(k * ang) for k in w] + [w[k] * np.sin(k * ang) for k in w], axis=1)
    dist = np.abs(((ts - quiet_phase) / period + 0.5) % 1.0 - 0.5)  # 0 at the quiet phase
    noise = rng.normal(size=(len(ts), 24)) * (0.1 + 1.5 * dist)[:, None]
    x = np.concatenate([base, noise], axis=1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_period_found_to_hundredths_across_spans():
    ts = np.arange(0.0, 120.0)
    sim = periodic_sim(ts, 4.73, 1.0)
    spans = [(0.0, 40.0), (70.0, 120.0)]
    period, strength = estimate_period(sim, ts, spans, WINDOW)
    assert period == pytest.approx(4.73, abs=0.02)
    assert strength > 0.3


def test_cut_phase_is_the_most_alike_moment_of_the_cycle():
    ts = np.arange(0.0, 120.0)
    period, quiet = 5.2, 3.1
    cyc = find_cycle(periodic_sim(ts, period, quiet), ts, [(0.0, 120.0)], WINDOW, EpisodeParams())
    assert cyc is not None
    err = abs(((cyc.phase_sec - quiet) / period + 0.5) % 1.0 - 0.5) * period
    assert err < 0.5, (cyc, quiet)


def test_no_clear_period_gives_fixed_length_episodes():
    rng = np.random.default_rng(1)
    ts = np.arange(0.0, 100.0)
    x = rng.normal(size=(100, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    params = EpisodeParams(max_episode_sec=12.0)
    plan = plan_episodes([(0.0, 99.0)], [], 101.0, sim=x @ x.T, ts=ts, window_sec=WINDOW, params=params)
    assert plan.cycle is None
    assert len(plan.episodes) == 9  # ceil(101 / 12) equal pieces, the last span extended to the clip's end
    assert all(e.duration_sec <= 12.0 + 1e-9 and e.cycle_index == -1 for e in plan.episodes)
    assert plan.episodes[0].start_sec == 0 and plan.episodes[-1].end_sec == pytest.approx(101.0)


def test_cycle_episodes_are_whole_cycles_between_cuts():
    ts = np.arange(0.0, 60.0)
    sim = periodic_sim(ts, 5.0, 2.0)
    plan = plan_episodes([(0.0, 59.0)], [], 61.0, sim=sim, ts=ts, window_sec=WINDOW,
                         params=EpisodeParams(cycles_per_episode=2))
    assert plan.cycle is not None
    assert all(e.n_cycles == 2 for e in plan.episodes[:-1])
    for e in plan.episodes:
        assert e.duration_sec == pytest.approx(e.n_cycles * plan.cycle.period_sec)
    assert any(s.reason == "partial cycle" for s in plan.skipped)


def test_margin_only_where_work_touches_an_anomaly():
    spans = clean_spans([(0.0, 20.0), (30.0, 57.0)], [(20.0, 30.0)], 60.0, 57.0, margin_sec=2.0)
    assert spans == [(0.0, 18.0), (32.0, 60.0)]  # the clip's ends keep their frames


def test_short_and_missing_work_are_skipped_with_reasons():
    plan = plan_episodes([], [(0.0, 60.0)], 60.0)
    assert plan.episodes == [] and plan.skipped[0].reason == "no work spans"
    plan = plan_episodes([(10.0, 11.0)], [], 60.0, params=EpisodeParams(min_episode_sec=2.0, margin_sec=0))
    assert plan.episodes == [] and "shorter than the minimum" in plan.skipped[0].reason


def test_bad_options_are_named():
    with pytest.raises(InvalidInputError, match="max_episode_sec"):
        EpisodeParams(min_episode_sec=10, max_episode_sec=5)
    with pytest.raises(InvalidInputError, match="cycles_per_episode"):
        EpisodeParams(cycles_per_episode=0)
    with pytest.raises(InvalidInputError, match="margin_sec"):
        EpisodeParams(margin_sec=float("nan"))


def test_frame_range_and_cycle_starts():
    assert frame_range(1.0, 2.0, 30.0) == (30, 60)
    assert frame_range(1.01, 1.02, 30.0) == (31, 31)
    assert Cycle(5.0, 1.5, 1.0).starts(0.0, 12.0) == [1.5, 6.5, 11.5]
