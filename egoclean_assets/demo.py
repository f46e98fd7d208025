"""Offline demo: a synthetic dataset and the tiny model through the whole Dagster graph.

Usage (from the repository root; `bash scripts/demo.sh` does the same)::

    .venv/bin/python -m egoclean_assets.demo                 # 2 synthetic clips of 60 s, CPU, no network
    .venv/bin/python -m egoclean_assets.demo --clips 3 --duration 45
    HF_TOKEN=hf_... .venv/bin/python -m egoclean_assets.demo --real   # the seed's two real clips

It writes the synthetic dataset (egoclean.synth) and a tiny random-weight V-JEPA 2
(egoclean.embed.tiny_model) under the data root (default data/demo), registers the clips as
partitions in the persistent instance at dagster_home/ (or $DAGSTER_HOME), materializes
every asset and check for them through Dagster (clip_pipeline runs launched from
workspace.yaml's code location, as the UI launches them), exports their clean work
spans as a LeRobot v3.0 dataset (the export_dataset job), prints the segments from
DuckDB and the check results, and says where the dataset is, how to load it, and how to
open the same runs in the UI. `--real` fetches factory001_worker001_00001 and _00002 from
Hugging Face and embeds them with facebook/vjepa2-vitl-fpc64-256 (a GPU is strongly
advised: ~84 s per window on a CPU).
"""

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from egoclean.core.errors import EgoCleanError
from egoclean.core.secrets import redact
from egoclean.settings import current as current_settings

DEMO_SCOPE = "*/*"  # every worker of the synthetic source
DEMO_WORKERS = 2  # synthetic workers in the demo's source; it runs only the first one's clips
DEMO_RUN_PREFIX = "factory001_worker001_"
REAL_CLIPS = ["factory001_worker001_00001", "factory001_worker001_00002"]


def _synthetic(root: Path, clips: int, duration: float) -> tuple[dict, list[str]]:
    """The synthetic dataset and tiny model under `root` (reused when already there)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    cfg = SynthConfig(clips=clips, duration_sec=duration, workers=DEMO_WORKERS)
    src = root / "source"
    marker = root / "source.json"
    summary = json.loads(marker.read_text()) if marker.is_file() else None
    if summary is None or summary.get("config") != json.loads(json.dumps(cfg.__dict__)):
        print(f"writing {DEMO_WORKERS} synthetic worker(s) x {clips} clip(s) of {duration:g} s to {src} ...",
              flush=True)
        t0 = time.perf_counter()
        summary = write_dataset(src, cfg)
        marker.write_text(json.dumps(summary, default=str, indent=2))
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    model = root / "tiny-vjepa2"
    if not (model / "config.json").is_file():
        save_tiny_model(model)
    env = {
        "EGOCLEAN_SOURCE": str(src),
        "EGOCLEAN_MODEL": str(model),
        "EGOCLEAN_DEVICE": "cpu",
        "EGOCLEAN_GROUND_TRUTH": str(summary["ground_truth"]),
        "EGOCLEAN_GROUND_TRUTH_SEED": "0",  # synthetic ids reuse seed ids; their truth is the planted spans
        # discovery looks at every worker of the demo's own (small, local) source, so a
        # worker added to it is found by the sensor and discover_clips_job
        "EGOCLEAN_SCOPE": DEMO_SCOPE,
    }
    # the demo runs the first worker's clips; the others are left for discovery and the
    # backfill steps of the README (factory_001/worker_002)
    return env, [c["clip_id"] for c in summary["clips"] if c["clip_id"].startswith(DEMO_RUN_PREFIX)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m egoclean_assets.demo", description=__doc__.splitlines()[0])
    p.add_argument("--real", action="store_true", help="the seed's two real clips from Hugging Face (needs HF_TOKEN)")
    p.add_argument("--data-root", default="data/demo", help="where the dataset, model, outputs and DuckDB go")
    p.add_argument("--clips", type=int, default=2, help="synthetic clips (default 2)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per synthetic clip (default 60)")
    args = p.parse_args(argv)
    root = Path(args.data_root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.real:
            from egoclean.core.secrets import hf_token

            if not hf_token():
                raise EgoCleanError("--real needs HF_TOKEN (the dataset is gated): export HF_TOKEN=hf_... "
                                    "after accepting the licence on huggingface.co/datasets/builddotai/Egocentric-10K")
            from egoclean.core import defaults

            # explicit, so settings left in the shell by a synthetic demo do not apply (the
            # device does: the shell's choice, read like every variable by egoclean.settings)
            env = {"EGOCLEAN_SOURCE": defaults.DATASET_URL, "EGOCLEAN_MODEL": defaults.MODEL_ID,
                   "EGOCLEAN_DEVICE": current_settings().device,
                   "EGOCLEAN_GROUND_TRUTH": "", "EGOCLEAN_GROUND_TRUTH_SEED": "1",
                   "EGOCLEAN_SCOPE": defaults.SCOPE}  # the seed clips' worker, not the whole dataset
            keys = REAL_CLIPS
        else:
            env, keys = _synthetic(root, args.clips, args.duration)
        env |= {"EGOCLEAN_DATA_ROOT": str(root / "outputs"), "EGOCLEAN_DB": str(root / "egoclean.duckdb"),
                "EGOCLEAN_EXPORT": str(root / "lerobot")}
        return _run(root, env, keys)
    except EgoCleanError as e:
        print(f"demo: error: {redact(str(e))}", file=sys.stderr)
        return 2


def _export(instance) -> bool:
    """Assemble the LeRobot v3.0 dataset from the clips just materialized (the export_dataset job).

    Launched from the code location like the clip runs, so it has a row on the job's page and
    the timeline (execute_in_process left it off both)."""
    # imported here, as in _run: the demo module itself stays light to import
    from egoclean_assets.backfill import QUIET
    from egoclean_assets.launch import launch_partition_runs

    t0 = time.perf_counter()
    ((_, run),) = launch_partition_runs(instance, [None], job_name="export_dataset", tags={"egoclean/demo": "1"},
                                        run_config=QUIET)
    print(f"\nlerobot_dataset: run {run.run_id[:8]} {'succeeded' if run.success else 'FAILED'} "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    ok = run.success
    for ev in sorted(run.checks, key=lambda e: e.check_name):
        print(f"  check lerobot_dataset.{ev.check_name}: {'passed' if ev.passed else 'FAILED'}"
              f"{' - ' + ev.description if ev.description else ''}")
        ok &= ev.passed
    for step, message in run.step_failures:
        print(f"  step {step} failed: {redact(message)}")
    return ok


def _run(root: Path, env: dict, keys: list[str]) -> int:
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.store import Store
    from egoclean_assets.backfill import QUIET, instance_from_env
    from egoclean_assets.definitions import build_definitions
    from egoclean_assets.launch import launch_partition_runs
    from egoclean_assets.partitions import add_clip_partitions
    from egoclean_assets.resources import build_resources

    # the demo's settings over this shell's: what the runs use, and what demo.env records;
    # the code server and run workers launched below read them from the environment, as
    # `dagster dev` does after `source demo.env`
    os.environ.update(env)
    # built here once so a bad setting fails in one line before any run starts
    build_definitions(build_resources(dict(os.environ)))
    ok = True
    with instance_from_env() as instance:
        add_clip_partitions(instance, keys)
        print(f"Dagster instance: {os.environ['DAGSTER_HOME']}; partitions: {', '.join(keys)}", flush=True)
        # Launched from workspace.yaml's code location like a UI run, so the runs show on
        # the job's page and the Overview timeline and re-execute as the same job.
        t0 = time.perf_counter()
        for key, run in launch_partition_runs(instance, keys, tags={"egoclean/demo": "1"}, run_config=QUIET):
            print(f"\n{key}: run {run.run_id[:8]} {'succeeded' if run.success else 'FAILED'} "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
            t0 = time.perf_counter()
            ok &= run.success
            for ev in sorted(run.checks, key=lambda e: e.check_name):
                detail = ev.description or (ev.metadata["result"].value if "result" in ev.metadata else "")
                if "per_span_iou" in ev.metadata:
                    detail = f"IoU per ground-truth span {ev.metadata['per_span_iou'].value}"
                # a warning check (head_motion_plausible) flags something to look at, not a failed demo
                warn = not ev.passed and getattr(ev.severity, "value", "") == "WARN"
                print(f"  check {ev.asset_key.to_user_string()}.{ev.check_name}: "
                      f"{'passed' if ev.passed else 'WARNING' if warn else 'FAILED'}{' - ' + detail if detail else ''}")
                ok &= ev.passed or warn
            for step, message in run.step_failures:
                print(f"  step {step} failed: {redact(message)}")
        ok &= _export(instance)
    store = Store(env["EGOCLEAN_DB"])
    print("\nAnomalous spans (DuckDB segments table):")
    print(store.format_query(
        "SELECT s.clip_id, egoclean_mmss(s.start_sec) AS start, egoclean_mmss(s.end_sec) AS end, "
        "round(s.duration_sec, 1) AS seconds, round(s.peak_score, 4) AS peak, "
        "CASE WHEN c.random_weights THEN 'random weights' ELSE s.model END AS model "
        "FROM segments s JOIN clips c USING (clip_id) WHERE s.kind = 'anomaly' ORDER BY s.clip_id, s.start_sec"))
    print("\nDetections against ground truth (detection_eval view):")
    print(store.format_query(
        "SELECT clip_id, label, status, truth, detected, round(iou, 2) AS iou, "
        "start_error_sec, end_error_sec FROM detection_eval WHERE clip_id IN (SELECT clip_id FROM clips) "
        "ORDER BY clip_id, gt_start_sec"))
    env_file = root / "demo.env"
    ui_env = env | {"DAGSTER_HOME": os.environ["DAGSTER_HOME"]}
    env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in ui_env.items()))
    print(f"""
Outputs: {env['EGOCLEAN_DATA_ROOT']}    DuckDB: {env['EGOCLEAN_DB']}
LeRobot v3.0 dataset: {env['EGOCLEAN_EXPORT']}  (dataset card: README.md inside)
  load it:  LeRobotDataset("local/egoclean", root={str(env['EGOCLEAN_EXPORT'])!r})   # lerobot >= 0.4
  or read it: pandas.read_parquet({str(env['EGOCLEAN_EXPORT'] + '/meta/episodes')!r}) and the MP4s under videos/
  re-export: .venv/bin/egoclean export --db {shlex.quote(env['EGOCLEAN_DB'])} \\
               --out {shlex.quote(env['EGOCLEAN_EXPORT'])}
Query:   .venv/bin/egoclean sql --db {shlex.quote(env['EGOCLEAN_DB'])} "SELECT * FROM segments"
Open the same runs in the UI (the environment file points the resources at this demo's data):
  source {shlex.quote(str(env_file))} && .venv/bin/dagster dev
""")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
