"""Benchmark of what a `clip_pipeline` run costs beyond its work: multiprocess vs in-process executor.

Not a test. A run launched from the UI goes through Dagster's run worker, which hands the
steps to the job's executor. Dagster's default, the multiprocess executor, starts a fresh
Python per step (11 steps here, each importing the definitions and, for the steps that
need it, torch); `clip_pipeline` now uses the in-process executor (one process for the
run). Both are run here through `dagster.execute_job` on a reconstructable job, the run
worker's code path, on the same synthetic clip with the tiny model, alternating, on a
SQLite instance in a temp DAGSTER_HOME with the shipped dagster.yaml (pools included).
For each run: wall time, and the sum of the step durations (the work). Medians of
`--repeat` runs; ratios against the multiprocess baseline of this run.

    .venv/bin/python -m benchmarks.bench_run_overhead [--repeat 2] [--duration 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, machine_line, median, ratio
from dagster import (
    DagsterInstance,
    execute_job,
    in_process_executor,
    multiprocess_executor,
    reconstructable,
)


def _with_executor(executor):
    from egoclean_assets.definitions import build_definitions

    return build_definitions().resolve_job_def("clip_pipeline").with_executor_def(executor)


def multiprocess_job():
    """clip_pipeline on Dagster's default multiprocess executor (the baseline)."""
    return _with_executor(multiprocess_executor)


def in_process_job():
    """clip_pipeline on the in-process executor, as shipped."""
    return _with_executor(in_process_executor)


def one_run(job_fn, instance, key: str) -> tuple[float, float, bool]:
    t0 = time.perf_counter()
    with execute_job(reconstructable(job_fn), instance=instance, tags={"dagster/partition": key},
                     run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                     raise_on_error=False) as result:
        wall = time.perf_counter() - t0
        starts, work = {}, 0.0
        for e in instance.all_logs(result.run_id):
            kind = e.dagster_event.event_type_value if e.dagster_event else None
            if kind == "STEP_START":
                starts[e.step_key] = e.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and e.step_key in starts:
                work += e.timestamp - starts.pop(e.step_key)
        return wall, work, result.success


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the synthetic clip")
    args = p.parse_args(argv)
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        summary = write_dataset(tmp / "source", SynthConfig(clips=1, duration_sec=args.duration, width=320, height=180))
        model = save_tiny_model(tmp / "tiny")
        key = summary["clips"][0]["clip_id"]
        home = tmp / "home"
        home.mkdir()
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        os.environ.update({
            "DAGSTER_HOME": str(home), "EGOCLEAN_SOURCE": str(tmp / "source"), "EGOCLEAN_MODEL": str(model),
            "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DATA_ROOT": str(tmp / "data"), "EGOCLEAN_DB": str(tmp / "e.duckdb"),
            "EGOCLEAN_GROUND_TRUTH_SEED": "0", "EGOCLEAN_GROUND_TRUTH": str(summary["ground_truth"]),
            # the multiprocess executor's step processes import this module and benchmarks.common
            "EGOCLEAN_CACHE": str(tmp / "cache"), "PYTHONPATH": str(ROOT),
        })
        rows: dict[str, list] = {"multiprocess (Dagster default, before)": [], "in_process (clip_pipeline now)": []}
        fns = dict(zip(rows, (multiprocess_job, in_process_job)))
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("clips", [key])
            for _ in range(args.repeat):
                for name, fn in fns.items():
                    wall, work, ok = one_run(fn, instance, key)
                    print(f"  {name}: {wall:.1f} s wall, {work:.1f} s in steps, {'ok' if ok else 'FAILED'}", flush=True)
                    rows[name].append((wall, work, ok))
        print(f"\nclip_pipeline run overhead; {machine_line()}")
        print(f"one synthetic clip, {args.duration:g} s at 320x180, tiny V-JEPA 2 on the CPU, medians of {args.repeat}")
        base = median(w for w, _, _ in rows["multiprocess (Dagster default, before)"])
        print("| executor | run wall s | sum of step durations s | wall / baseline |")
        print("|---|---|---|---|")
        for name, rs in rows.items():
            wall = median(w for w, _, _ in rs)
            work = median(x for _, x, _ in rs)
            print(f"| {name} | {wall:.1f} | {work:.1f} | {ratio(wall, base)} |")
        return 0 if all(ok for rs in rows.values() for _, _, ok in rs) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
