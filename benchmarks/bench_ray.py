"""Benchmark: per-clip Dagster runs (today, local mode) against batched Ray runs, same clips, one process.

Both modes backfill the same synthetic clips (tiny model, CPU) through Dagster, each on
a fresh instance and output folder:

- local: `EGOCLEAN_EXECUTION=local`, one `clip_pipeline` run per clip (what the backfill
  CLI and the UI do today): each run loads the encoder again;
- ray: `EGOCLEAN_EXECUTION=ray`, K clips per run (`EGOCLEAN_CLIPS_PER_RUN`), the clips'
  stages on a local Ray cluster (one head, this machine's CPUs, a GPU_STANDIN resource
  for the encoder actor), the encoder loaded once by the resident actor.

Reported per mode: total wall, runs, per-run overhead (run wall minus the time inside
its steps, from Dagster's step events), model loads, windows/s over the whole backfill.
The Ray cluster's start-up is measured and reported on its own (a cluster is started
once and serves every run after).

Ray binds every interface and probes an outside address at start-up, so the script
re-runs itself inside a loopback-only network namespace (root: `unshare --net`).
Usage:

    sudo .venv/bin/python -m benchmarks.bench_ray [--clips 6] [--seconds 8] [--k 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, machine, machine_line, utc_now
from tests.support.ray_head import local_ray_head, rerun_in_loopback_namespace


def run_stats(instance, run_ids: list[str]) -> dict:
    """Wall per run (start to end event) and the time inside its steps (STEP_SUCCESS/FAILURE durations)."""
    from dagster import DagsterEventType

    walls, steps = [], []
    for rid in run_ids:
        events = instance.all_logs(rid)
        ts = [e.timestamp for e in events]
        walls.append(max(ts) - min(ts))
        inside = 0.0
        for e in events:
            if e.is_dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS:
                inside += e.dagster_event.step_success_data.duration_ms / 1000
        steps.append(inside)
    return {"runs": len(run_ids), "run_wall_s": walls, "inside_steps_s": steps,
            "overhead_per_run_s": (sum(walls) - sum(steps)) / max(1, len(run_ids))}


def backfill_mode(mode: str, work: Path, dataset: Path, model: str, n: int, k: int) -> dict:
    from dagster import AssetKey, DagsterInstance

    from egoclean_assets import backfill

    home = work / f"home_{mode}"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "EGOCLEAN_EXECUTION": mode, "EGOCLEAN_CLIPS_PER_RUN": str(k),
           "EGOCLEAN_SOURCE": str(dataset), "EGOCLEAN_MODEL": model, "EGOCLEAN_DEVICE": "cpu",
           "EGOCLEAN_DATA_ROOT": str(work / f"data_{mode}"), "EGOCLEAN_DB": str(work / f"{mode}.duckdb"),
           "EGOCLEAN_GROUND_TRUTH": str(dataset / "ground_truth.csv"), "EGOCLEAN_GROUND_TRUTH_SEED": "0",
           "EGOCLEAN_CACHE": str(work / "cache"),
           # one encoder actor (the stand-in GPU); tasks take half a logical CPU so decoders of
           # several clips run next to rectification on 2 cores
           "EGOCLEAN_RAY_ACTOR_RESOURCES": '{"GPU_STANDIN": 1}', "EGOCLEAN_RAY_RECTIFY_CPUS": "0.5",
           "EGOCLEAN_RAY_EMBED_CPUS": "0.5", "EGOCLEAN_RAY_ANALYSE_CPUS": "0.5", "EGOCLEAN_RAY_TRAJECTORY_CPUS": "0.5",
           "EGOCLEAN_RAY_BATCH_SIZE": "8"}
    os.environ.update(env)
    lines: list[str] = []
    with DagsterInstance.get() as inst:
        t0 = time.perf_counter()
        failed = backfill.backfill(["factory_001/worker_001"], inst, limit=n, out=lines.append)
        wall = time.perf_counter() - t0
        run_ids = [r.run_id for r in inst.get_runs()]
        stats = run_stats(inst, run_ids)
        windows, loads = 0, set()
        for rec in inst.fetch_materializations(AssetKey("vjepa_embeddings"), limit=10000).records:
            m = rec.asset_materialization.metadata
            windows += int(m["windows"].value)
            loads.add(m["encoder_load_id"].value if "encoder_load_id" in m else rec.run_id)
    return {"mode": mode, "clips": n, "k": k if mode == "ray" else 1, "failed_runs": failed, "wall_s": wall,
            "windows": windows, "windows_per_s": windows / wall, "model_loads": len(loads), **stats,
            "lines": lines}


def inside(args) -> dict:
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        dataset = work / "source"
        write_dataset(dataset, SynthConfig(workers=1, clips=args.clips, duration_sec=args.seconds, width=args.width,
                                           height=args.height, anomalies=False))
        model = str(save_tiny_model(work / "tiny"))
        results = {"local": backfill_mode("local", work, dataset, model, args.clips, 1)}
        t0 = time.perf_counter()
        # the head takes all CPUs; the GPU_STANDIN resource stands in for the encoder's GPU
        with local_ray_head(num_cpus=os.cpu_count() or 1, resources={"GPU_STANDIN": 1}, timeout_s=120):
            cluster_start = time.perf_counter() - t0
            results["ray"] = backfill_mode("ray", work, dataset, model, args.clips, args.k)
            results["ray"]["cluster_start_s"] = cluster_start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=270)
    p.add_argument("--k", type=int, default=3, help="clips per Ray-mode run")
    p.add_argument("--json", default=None)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not args.inside:
        # token authentication with a token made for this run (nothing written to ~/.ray)
        env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
        sys.exit(rerun_in_loopback_namespace(__spec__.name, [*sys.argv[1:], "--inside"], env=env))
    import torch

    res = inside(args)
    loc, ray_ = res["local"], res["ray"]
    out = {"machine": {"machine": machine(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
           "date": utc_now(),
           "clips": args.clips, "seconds": args.seconds, "size": f"{args.width}x{args.height}", **res,
           "ratios": {"wall": loc["wall_s"] / ray_["wall_s"],
                      "overhead_per_run": loc["overhead_per_run_s"] / max(1e-9, ray_["overhead_per_run_s"]),
                      "windows_per_s": ray_["windows_per_s"] / loc["windows_per_s"]}}
    for m in ("local", "ray"):
        r = res[m]
        print(f"{m:5s}: {r['runs']} run(s) for {r['clips']} clips, wall {r['wall_s']:.1f} s, overhead/run "
              f"{r['overhead_per_run_s']:.2f} s, model loads {r['model_loads']}, {r['windows']} windows, "
              f"{r['windows_per_s']:.2f} windows/s" + (f", cluster start {r['cluster_start_s']:.1f} s" if m == "ray"
                                                        else ""))
    print("ratios (local / ray for time, ray / local for rate):", {k: round(v, 2) for k, v in out["ratios"].items()})
    print(machine_line(f"{torch.get_num_threads()} torch threads"))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
