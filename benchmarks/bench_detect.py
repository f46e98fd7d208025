"""Benchmark and quality study of analysis + detection (egoclean.temporal.analysis / egoclean.temporal.detection).

Speed (`--speed`): analysis and detection for N = 1,200 and N = 20,000 windows with
temporal tokens (N, 32, 1024) float32 read from a memory-mapped .npy on disk (the
input is not counted in RAM), each case in its own subprocess: wall time and peak
Python-heap memory (tracemalloc; numpy reports its buffers to it; memory-mapped file
pages are not counted). The baseline is the explicit N x N computation of the
typicality at N = 1,200, measured in the same run; ratios are against it.

Quality (`--quality`): what the detector flags on synthetic clips without any planted
anomaly (stationary noise, periodic work, periodic work with slow drift) and on
clips with planted spans, with the separation guard off (the SPEC's method) and on.

    .venv/bin/python -m benchmarks.bench_detect            # both, prints Markdown tables
    .venv/bin/python -m benchmarks.bench_detect --quality --seeds 30
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks.common import machine_line, run_module
from egoclean.temporal.analysis import analyse
from egoclean.temporal.detection import DetectionParams, detect
from egoclean.embed.embeddings import Embeddings
from egoclean.temporal.evaluation import evaluate

T, D = 32, 1024


# ---------------------------------------------------------------- synthetic clips
def synthetic(
    n: int = 400,
    t: int = 8,
    d: int = 64,
    period: float = 7.0,
    spans: tuple = (),
    noise: float = 0.3,
    seed: int = 0,
    step: float = 1.0,
    mix: float = 1.0,
    drift: float = 0.0,
) -> tuple[Embeddings, list[tuple[float, float]]]:
    """Temporal tokens of a periodic 'work' process plus noise; planted spans (window
    index ranges [a, b)) come from another process (`mix` < 1 blends it with work);
    `drift` adds a slow random walk to the work process. Returns embeddings and the
    planted spans in seconds."""
    rng = np.random.default_rng(seed)
    base, u, v, other, ou = rng.normal(size=(5, d))
    ts = np.arange(n) * step
    tt = ts[:, None] + np.arange(t)[None, :] * (64 / 30 / t)  # token times inside a 64-frame window
    ph = 2 * np.pi * tt / period
    work = base + np.cos(ph)[..., None] * u + np.sin(ph)[..., None] * v
    if drift:
        work = work + (np.cumsum(rng.normal(size=(n, d)), axis=0) * drift / np.sqrt(n))[:, None, :]
    temb = work.copy()
    for a, b in spans:
        odd = other + np.cos(2 * np.pi * tt[a:b] / 3.1)[..., None] * ou
        temb[a:b] = (1 - mix) * work[a:b] + mix * odd
    temb = (temb + noise * rng.normal(size=temb.shape)).astype(np.float32)
    truth = [(float(ts[a]), float(ts[b]) if b < n else float(ts[-1])) for a, b in spans]
    return Embeddings(temb.mean(axis=1), temb, ts, {"model": "synthetic"}), truth


def stationary_noise(n: int = 400, seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    temb = (rng.normal(size=64) + 0.3 * rng.normal(size=(n, 8, 64))).astype(np.float32)
    return Embeddings(temb.mean(axis=1), temb, np.arange(n, dtype=np.float64), {"model": "synthetic"})


THREE = ((40, 75), (180, 210), (300, 340))
CLEAN = {
    "stationary noise": lambda s: (stationary_noise(seed=s), []),
    "periodic work + noise": lambda s: synthetic(seed=s),
    "periodic work, strong noise": lambda s: synthetic(seed=s, noise=1.0),
    "periodic work + slow drift": lambda s: synthetic(seed=s, drift=1.0),
    "periodic work + strong drift": lambda s: synthetic(seed=s, drift=3.0),
}
PLANTED = {
    "3 spans (35/30/40 s)": lambda s: synthetic(seed=s, spans=THREE),
    "spans at start and end (30 s)": lambda s: synthetic(seed=s, spans=((0, 30), (370, 400))),
    "1 long span (120 s)": lambda s: synthetic(seed=s, spans=((100, 220),)),
    "1 short span (12 s)": lambda s: synthetic(seed=s, spans=((200, 212),)),
    "3 spans + slow drift": lambda s: synthetic(seed=s, spans=THREE, drift=1.0),
    "3 weak spans (30 % blend)": lambda s: synthetic(seed=s, spans=THREE, mix=0.3),
}


def quality(seeds: int, guard: float) -> str:
    """Markdown tables: clean clips (what is flagged) and planted clips (guard off / on)."""
    off, on = DetectionParams(), DetectionParams(min_separation=guard)
    out = [f"Synthetic clips: N = 400 windows at 1 s, temporal tokens (400, 8, 64), {seeds} seeds each; "
           f"guard = `min_separation={guard}`.", ""]
    out += ["| clean clip (no anomaly) | spans / clip (guard off) | flagged s / clip (of 399) | "
            "clips flagged | separation min / median / max | clips flagged (guard on) | spans / clip (guard on) |",
            "|---|---|---|---|---|---|---|"]
    for name, make in CLEAN.items():
        n_sp, dur, seps, n_sp_on = [], [], [], []
        for s in range(seeds):
            emb, _ = make(s)
            a, b = detect(emb, off), detect(emb, on)
            n_sp.append(len(a.spans))
            dur.append(sum(x.duration_sec for x in a.spans))
            seps.append(a.separation if a.separation is not None else np.nan)
            n_sp_on.append(len(b.spans))
        sp = np.nanpercentile(seps, [0, 50, 100])
        out.append(
            f"| {name} | {np.mean(n_sp):.1f} | {np.mean(dur):.0f} | {sum(x > 0 for x in n_sp)}/{seeds} | "
            f"{sp[0]:.2f} / {sp[1]:.2f} / {sp[2]:.2f} | "
            f"{sum(x > 0 for x in n_sp_on)}/{seeds} | {np.mean(n_sp_on):.1f} |"
        )
    out += ["", "| planted clip | planted spans | matched (guard off) | false pos. (off) | mean IoU (off) | "
            "separation min / median | matched (guard on) | false pos. (on) |", "|---|---|---|---|---|---|---|---|"]
    for name, make in PLANTED.items():
        tot = tp_off = fp_off = tp_on = fp_on = 0
        ious, seps = [], []
        for s in range(seeds):
            emb, truth = make(s)
            a, b = detect(emb, off), detect(emb, on)
            ea, eb = evaluate(a.spans, truth), evaluate(b.spans, truth)
            tot += len(truth)
            tp_off += ea.true_positives
            fp_off += len(ea.unmatched_detections)
            tp_on += eb.true_positives
            fp_on += len(eb.unmatched_detections)
            ious += [t.best_iou for t in ea.truth]
            seps.append(a.separation if a.separation is not None else np.nan)
        sp = np.nanpercentile(seps, [0, 50])
        out.append(
            f"| {name} | {tot} | {tp_off} | {fp_off} | {np.mean(ious):.2f} | "
            f"{sp[0]:.2f} / {sp[1]:.2f} | {tp_on} | {fp_on} |"
        )
    return "\n".join(out)


# ---------------------------------------------------------------- speed
def make_input(folder: Path, n: int, seed: int = 0) -> str:
    """Write `<folder>/bench<n>_{emb,temb,ts}.npy`, temb streamed to a memory map."""
    prefix = folder / f"bench{n}"
    rng = np.random.default_rng(seed)
    temb = np.lib.format.open_memmap(f"{prefix}_temb.npy", mode="w+", dtype=np.float32, shape=(n, T, D))
    base = rng.standard_normal(T * D, dtype=np.float32).reshape(T, D)
    for i in range(0, n, 500):
        k = min(500, n - i)
        temb[i : i + k] = base + rng.standard_normal((k, T, D), dtype=np.float32)
    temb.flush()
    del temb
    np.save(f"{prefix}_emb.npy", rng.standard_normal((n, D), dtype=np.float32))
    np.save(f"{prefix}_ts.npy", np.arange(n, dtype=np.float64))
    return str(prefix)


def explicit_typicality(temb: np.ndarray) -> np.ndarray:
    """The baseline: flatten, normalise, form S = X X^T (N x N), row means without the diagonal."""
    x = np.asarray(temb, dtype=np.float32).reshape(len(temb), -1)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    return (s.sum(axis=1) - np.diag(s)) / (len(x) - 1)


def run_case(case: str, prefix: str) -> dict:
    """One case in this process: a timed run, then a tracemalloc'd run for the peak."""
    emb = Embeddings.load(prefix, mmap=True)
    fns = {
        "detect (O(N) typicality)": lambda: detect(emb),
        "explicit N x N typicality (baseline)": lambda: explicit_typicality(emb.temb),
        "analyse, no matrices": lambda: analyse(emb, matrices=False),
        "analyse + matrices (<= 2048 windows)": lambda: analyse(emb, matrices=True, max_matrix=2048),
    }
    fn = fns[case]
    fn()  # warm the page cache and BLAS
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"case": case, "n": len(emb), "wall_s": wall, "peak_mib": peak / 2**20}


def speed(sizes: list[int], workdir: Path) -> str:
    rows = []
    for n in sizes:
        prefix = make_input(workdir, n)
        cases = [
            "detect (O(N) typicality)",
            "analyse, no matrices",
            "analyse + matrices (<= 2048 windows)",
        ]
        if n <= 2000:  # the N x N baseline: 20,000^2 would be 1.6 GB float32 and 26 TFLOP
            cases.insert(0, "explicit N x N typicality (baseline)")
        for case in cases:
            res = run_module(__spec__.name, "--one", case, prefix, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        for suffix in ("_emb.npy", "_temb.npy", "_ts.npy"):
            os.unlink(prefix + suffix)
    base = next(r for r in rows if r["case"].startswith("explicit"))
    out = [
        f"Input temb (N, {T}, {D}) float32 memory-mapped from disk (warm page cache); "
        "wall = one timed run after a warm-up run; peak = tracemalloc peak of a third run.",
        "",
        "| N | case | wall (s) | wall / baseline | peak heap (MiB) | peak / baseline |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['n']:,} | {r['case']} | {r['wall_s']:.2f} | {r['wall_s'] / base['wall_s']:.2f} | "
            f"{r['peak_mib']:.1f} | {r['peak_mib'] / base['peak_mib']:.3f} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--sizes", default="1200,20000")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--guard", type=float, default=4.0, help="min_separation for the guarded runs")
    ap.add_argument("--workdir", default=None, help="where the temporary .npy inputs go (needs ~2.7 GB)")
    ap.add_argument("--one", nargs=2, metavar=("CASE", "PREFIX"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(*args.one)))
        return 0
    both = not (args.speed or args.quality)
    print(machine_line(f"numpy {np.__version__}"))
    if args.quality or both:
        print(quality(args.seeds, args.guard))
        print()
    if args.speed or both:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            print(speed([int(s) for s in args.sizes.split(",")], Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
