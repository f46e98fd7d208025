"""Benchmark of the DuckDB segment store (egoclean.store): writing and reading clips.

Not a test. For a 20-min clip (1,200 windows, a few spans) it times
  - baseline: the window_scores rows inserted with `executemany` (one row per call),
    in one transaction on one connection, into a copy of the same schema;
  - egoclean: `Store.replace_clip` end to end (open, schema check, DELETE + INSERT of
    clips / segments / window_scores in one transaction, close), whose window rows go
    in as one statement with list parameters (`unnest`);
and then `SELECT * FROM detection_eval` and `Store.segments` over a store holding
`--clips` clips. Medians of `--repeat` runs; ratios against the baseline of this run.

    .venv/bin/python -m benchmarks.bench_store [--clips 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import duckdb
import numpy as np

from benchmarks.common import machine_line, median_time, ratio
from egoclean.temporal.detection import Detection, Span, ema
from egoclean.temporal.evaluation import GroundTruthSpan
from egoclean.store import EMBEDDED_SCHEMA, Store

N = 1200  # windows of a 20-min clip at one window per second


def detection(seed: int) -> Detection:
    rng = np.random.default_rng(seed)
    ts = np.arange(N, dtype=np.float64)
    score = rng.random(N)
    spans = [Span(127.0, 174.0, 0.9), Span(969.0, 1023.0, 0.8)]
    on = ((ts >= 127) & (ts < 174)) | ((ts >= 969) & (ts < 1023))
    return Detection(ts, score, ema(score, 0.15), 0.6, 0.4, 0.5, on, spans,
                     [Span(0.0, 127.0), Span(174.0, 969.0), Span(1023.0, 1199.0)])


def clip(i: int) -> dict:
    return {"clip_id": f"factory001_worker{1 + i // 1000:03d}_{i % 1000:05d}", "n_frames": 36000, "fps": 30.0,
            "width": 1920, "height": 1080, "duration_sec": 1200.0, "paths": {"segments": f"/x/{i}.json"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        det = detection(0)
        rows = [("factory001_worker001_00000", float(t), float(s), float(m), bool(a))
                for t, s, m, a in zip(det.ts, det.score, det.smoothed, det.is_anomaly)]
        base_db = Path(tmp) / "baseline.duckdb"
        con = duckdb.connect(str(base_db))
        con.execute(EMBEDDED_SCHEMA)

        def baseline() -> None:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM window_scores WHERE clip_id = 'factory001_worker001_00000'")
            con.executemany("INSERT INTO window_scores VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")

        t_base = median_time(baseline, args.repeat)
        con.close()

        store = Store(Path(tmp) / "egoclean.duckdb")
        store.init()
        t_replace = median_time(lambda: store.replace_clip(clip(0), det, "bench"), args.repeat)

        for i in range(1, args.clips):
            store.replace_clip(clip(i), detection(i), "bench")
        store.replace_ground_truth(
            [GroundTruthSpan(clip(i)["clip_id"], 1200.0, 127.0, 174.0, "x") for i in range(args.clips)], "bench")
        t_eval = median_time(lambda: store.query("SELECT * FROM detection_eval"), args.repeat)
        t_segs = median_time(lambda: store.segments(clip(args.clips // 2)["clip_id"]), args.repeat)
        size_mb = store.path.stat().st_size / 1e6

    print(machine_line(f"duckdb {duckdb.__version__}"))
    print(f"\n| step ({N} windows per clip, {args.clips} clips) | median | vs baseline |")
    print("|---|---|---|")
    print(f"| baseline: executemany of window_scores only | {t_base * 1e3:.1f} ms | 1.000x |")
    print(f"| Store.replace_clip (whole clip, own connection) | {t_replace * 1e3:.1f} ms | "
          f"{ratio(t_replace, t_base, 3)} |")
    print(f"| SELECT * FROM detection_eval | {t_eval * 1e3:.1f} ms | {ratio(t_eval, t_base, 3)} |")
    print(f"| Store.segments(one clip) | {t_segs * 1e3:.1f} ms | {ratio(t_segs, t_base, 3)} |")
    print(f"\ndatabase size with {args.clips} clips: {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
