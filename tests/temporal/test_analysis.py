"""Tests for egoclean.temporal.analysis: O(N) typicality, similarity matrices, change, autocorrelation."""

from __future__ import annotations

import numpy as np
import pytest

from egoclean.temporal import analysis
from egoclean.temporal.analysis import (
    Analysis,
    analyse,
    autocorrelation,
    change_signal,
    cosine_similarity_matrix,
    dominant_period,
    typicality,
)
from egoclean.embed.embeddings import Embeddings
from egoclean.core.errors import InvalidInputError


def explicit_cosine(x: np.ndarray) -> np.ndarray:
    """The N x N cosine matrix the obvious way (zero rows: similarity 0)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    n = np.linalg.norm(x, axis=1)
    xn = x / np.where(n > 0, n, 1)[:, None]
    return xn @ xn.T


def explicit_typicality(x: np.ndarray) -> np.ndarray:
    s = explicit_cosine(x)
    np.fill_diagonal(s, 0.0)
    return s.sum(axis=1) / (len(x) - 1)


@pytest.mark.parametrize(
    "shape, zero_rows, chunk_bytes",
    [((2, 3), [], analysis.CHUNK_BYTES), ((5, 7), [2], 8 * 7), ((60, 4, 6), [0, 13, 59], 8 * 24 * 7),
     ((33, 1, 5), [], 100), ((40, 8, 16), [5, 6], analysis.CHUNK_BYTES)],
)
def test_typicality_equals_the_explicit_matrix(shape, zero_rows, chunk_bytes):
    rng = np.random.default_rng(sum(shape))
    x = (rng.normal(size=shape) + 0.5).astype(np.float32)
    x[zero_rows] = 0.0
    got = typicality(x, chunk_bytes=chunk_bytes)
    want = explicit_typicality(x)
    assert got.shape == (shape[0],)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    if zero_rows:
        assert np.all(got[zero_rows] == 0.0)


def test_typicality_streams_a_memory_mapped_file(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4, 8)).astype(np.float32)
    np.save(tmp_path / "t.npy", x)
    mm = np.load(tmp_path / "t.npy", mmap_mode="r")
    np.testing.assert_allclose(typicality(mm, chunk_bytes=8 * 32 * 3), explicit_typicality(x), atol=1e-12)


def test_typicality_needs_two_windows_and_finite_values():
    with pytest.raises(InvalidInputError, match="at least 2 windows, got 1"):
        typicality(np.ones((1, 4, 3)))
    x = np.ones((6, 4))
    x[4, 1] = np.nan
    with pytest.raises(InvalidInputError, match="window 4 holds NaN"):
        typicality(x)


def test_similarity_matrix_with_subsampled_rows_and_column_blocks():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3, 5)).astype(np.float32)
    x[7] = 0.0
    full = cosine_similarity_matrix(x, chunk_bytes=8 * 30 * 4)  # 4 feature columns per block
    np.testing.assert_allclose(full, explicit_cosine(x), atol=1e-6)
    assert full[7].max() == 0.0 and full[:, 7].max() == 0.0
    rows = np.array([0, 7, 10, 29])
    np.testing.assert_allclose(cosine_similarity_matrix(x, rows), explicit_cosine(x[rows]), atol=1e-6)


def test_change_signal_is_consecutive_cosine_distance_across_chunks():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(23, 6))
    want = 1.0 - np.array([explicit_cosine(e[i : i + 2])[0, 1] for i in range(22)])
    np.testing.assert_allclose(change_signal(e, chunk_bytes=8 * 6 * 4), want, atol=1e-12)
    assert change_signal(e[:1]).shape == (0,)


def test_autocorrelation_matches_the_definition():
    rng = np.random.default_rng(4)
    x = rng.normal(size=57)
    xc = x - x.mean()
    want = np.array([xc[: len(x) - k] @ xc[k:] for k in range(len(x))]) / (xc @ xc)
    r = autocorrelation(x)
    assert r[0] == pytest.approx(1.0)
    np.testing.assert_allclose(r, want, atol=1e-12)
    const = autocorrelation(np.full(10, 0.3))
    assert const[0] == 1.0 and not const[1:].any()


def test_dominant_period_in_seconds_and_none_for_noise():
    k = np.arange(600)
    periodic = np.where(k % 12 == 0, 1.0, 0.0) + 0.05 * np.random.default_rng(5).normal(size=600)
    assert dominant_period(autocorrelation(periodic), step_sec=0.5) == pytest.approx(6.0)
    noise = np.random.default_rng(6).normal(size=2000)
    assert dominant_period(autocorrelation(noise), step_sec=1.0) is None
    # never crosses zero: no period
    assert dominant_period(np.linspace(1.0, 0.1, 50), step_sec=1.0) is None


def periodic_embeddings(n=240, period=8, d=16, t=4, step=0.5, seed=0) -> Embeddings:
    """A slow sweep and a fast return once per period: the change signal repeats every period."""
    rng = np.random.default_rng(seed)
    base, u, v = rng.normal(size=(3, d))
    i = np.arange(n)
    angle = 0.15 * (i % period)
    mean = base + np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * v
    temb = mean[:, None, :] + 0.01 * rng.normal(size=(n, t, d))
    emb = temb.mean(axis=1)
    return Embeddings(emb.astype(np.float32), temb.astype(np.float32), i * step, {"model": "synthetic"})


def test_analyse_gives_signals_matrices_and_period():
    e = periodic_embeddings()
    a = analyse(e)
    n = len(e)
    assert a.change.shape == (n - 1,) and a.autocorr.shape == (n - 1,)
    assert a.step_sec == 0.5
    np.testing.assert_allclose(a.lags_sec[:3], [0.0, 0.5, 1.0])
    assert a.period_sec == pytest.approx(4.0)  # 8 windows of 0.5 s
    assert a.sim_mean.shape == (n, n) and a.sim_temporal.shape == (n, n)
    np.testing.assert_allclose(a.sim_temporal, explicit_cosine(e.temb), atol=1e-5)
    assert not a.matrices_subsampled


def test_analyse_without_matrices_or_with_subsampled_ones():
    e = periodic_embeddings(n=100)
    a = analyse(e, matrices=False)
    assert a.sim_mean is None and a.sim_temporal is None and a.matrix_ts is None
    b = analyse(e, max_matrix=20)
    assert b.sim_mean.shape == (20, 20) and b.sim_temporal.shape == (20, 20)
    assert b.matrices_subsampled and b.matrix_ts[0] == e.ts[0] and b.matrix_ts[-1] == e.ts[-1]
    rows = np.searchsorted(e.ts, b.matrix_ts)
    np.testing.assert_allclose(b.sim_temporal, explicit_cosine(e.temb[rows]), atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    emb = Embeddings(emb=rng.normal(size=(n, 8)).astype(np.float32),
                     temb=rng.normal(size=(n, 4, 8)).astype(np.float32), ts=np.arange(n, dtype=float))
    an = analyse(emb)
    files = an.save(tmp_path / "clip")
    assert sorted(p.name for p in files.values()) == ["clip_analysis.npz", "clip_sim_mean.npy", "clip_sim_temporal.npy"]
    back = Analysis.load(tmp_path / "clip")
    assert np.allclose(back.sim_temporal, an.sim_temporal, atol=1e-6)
    assert np.array_equal(back.change, an.change) and np.array_equal(back.lags_sec, an.lags_sec)
    assert back.period_sec == an.period_sec and back.step_sec == an.step_sec
