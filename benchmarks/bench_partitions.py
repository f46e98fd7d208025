"""Dataset-scale partitions: 1k, 100k and all 192,903 clip ids in SQLite and PostgreSQL instances.

For each instance kind and size, on a fresh instance: register the clip ids as `clips`
partitions (egoclean_assets.partitions.add_clip_partitions, which validates every id),
list them, record materializations for a sample, answer the webserver's GraphQL queries
that the asset page and its partition view send (the same query text, through
dagster-graphql against a code server process, as the UI's webserver does), launch a
backfill of every partition of the graph (`launchPartitionBackfill`, allPartitions).
Then, on a fresh instance with --daemon-size partitions, run the backfill daemon's first
iteration (it plans the backfill and submits one run per partition to the queue): its
cost per run is what a backfill over all clips pays in the daemon.

The ids are synthetic, in the real naming and shape: 85 factories, 2,144 workers,
192,903 clips (`factoryXXX_workerYYY_NNNNN`, numbered from 00001 per worker).

    python -m benchmarks.bench_partitions                        # both instances, all sizes
    python -m benchmarks.bench_partitions --backends sqlite --sizes 1000,100000
    python -m benchmarks.bench_partitions --sizes 0 --execution ray --daemon-size 160 \
        --planned-events per-partition,batched,subset               # Ray-mode submission (K clips per run)

At full size (--daemon-size 192903) the daemon's iteration would submit every run of the
pass (Dagster plans and submits all of an asset backfill's runs in one iteration);
--daemon-runs N stops it after about N runs (by cancelling the backfill, as the UI does),
and the row gives the per-pass fixed cost (planning), the submission cost per run and per
clip, the backfill's chunk writes and a projection for a whole pass; --cli-runs also
times the backfill CLI's run creation per range:

    python -m benchmarks.bench_partitions --sizes 0 --execution ray --daemon-size 256,192903 \
        --submit-workers 0 --clips-per-run 64 --planned-events subset --daemon-runs 100 --cli-runs 10

--execution ray backfills the clip assets in Ray mode (`clip_batch`, K = --clips-per-run
clips per run); --planned-events chooses how Dagster records a run's
ASSET_MATERIALIZATION_PLANNED events, its own switches: `per-partition` (the default: one
event per asset and clip, each its own commit), `batched` (DAGSTER_EVENT_BATCH_SIZE: the
same events written in batches) or `subset` (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS:
one event per asset carrying the run's partition range). --storage egoclean,dagster runs
each row twice, the second time with Dagster's own storage classes in place of
LockedPostgresStorage / LockedSqliteStorage (the same instance class, EgoCleanInstance):
the baseline of how they create runs (egoclean_assets/instance_storage.py).

Prints one JSON line per measurement and tables at the end. The test suite runs only a tiny
daemon row (tests/test_benchmarks.py): the full run takes minutes (PostgreSQL is started and
stopped by the benchmark).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import ROOT, machine_line
from egoclean.core import defaults
from benchmarks.common import meta as run_meta

FACTORIES, WORKERS, CLIPS = 85, 2144, 192_903
ASSET = "anomaly_segments"

PARTITION_STATS = """
query AssetPartitionStats($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionStats { numMaterialized numMaterializing numPartitions numFailed }
    }
  }
}"""

# the partition view: every key and its status ranges (what the UI's health bar draws)
PARTITION_STATUS = """
query AssetPartitionStatus($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions
        }
      }
    }
  }
}"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""


def clip_ids() -> list[str]:
    """192,903 ids over 2,144 workers in 85 factories, as evenly as the counts allow."""
    ids = []
    per_factory = [WORKERS // FACTORIES + (f < WORKERS % FACTORIES) for f in range(FACTORIES)]
    workers = [(f + 1, w + 1) for f in range(FACTORIES) for w in range(per_factory[f])]
    per_worker = [CLIPS // WORKERS + (i < CLIPS % WORKERS) for i in range(WORKERS)]
    for (f, w), n in zip(workers, per_worker):
        ids += [f"factory{f:03d}_worker{w:03d}_{c:05d}" for c in range(1, n + 1)]
    assert len(ids) == CLIPS and len(set(ids)) == CLIPS
    return ids


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


# --storage dagster: Dagster's own storage classes under the same instance class (the baseline of
# egoclean_assets/instance_storage.py's LockedPostgresStorage and LockedSqliteStorage)
DAGSTER_PG_STORAGE = "storage:\n  postgres:\n    postgres_url:\n      env: EGOCLEAN_PG_URL\n"


def instance_for(backend: str, pg, tmp: Path, storage: str = "egoclean"):
    from dagster import DagsterInstance

    home = tmp / f"home-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    if backend == "sqlite":
        text = (ROOT / "dagster_home" / "dagster.yaml").read_text()
        assert "\nstorage:" not in text  # (EgoCleanInstance's default storage: LockedSqliteStorage)
        if storage == "dagster":
            text += f"\nstorage:\n  sqlite:\n    base_dir: {home}\n"
    else:
        db = pg.createdb("dagster_" + uuid.uuid4().hex[:8])
        os.environ["EGOCLEAN_PG_URL"] = pg.url(db)
        text = (ROOT / "deploy" / "dagster.cluster.yaml").read_text()
        if storage == "dagster":
            text, swapped = re.subn(r"^storage:\n(?:  .*\n)+", DAGSTER_PG_STORAGE, text, flags=re.M)
            assert swapped == 1, "deploy/dagster.cluster.yaml: no `storage:` block to swap"
    (home / "dagster.yaml").write_text(text)
    return DagsterInstance.from_config(str(home))


def db_size(backend: str, instance, pg) -> int | None:
    """Bytes the instance's storage takes on disk."""
    if backend == "sqlite":
        base = Path(instance.root_directory)
        return sum(p.stat().st_size for p in base.rglob("*.db"))
    import psycopg2  # dagster-postgres's driver

    url = os.environ["EGOCLEAN_PG_URL"]
    db = url.rsplit("/", 1)[1]
    with psycopg2.connect(pg.dsn(db)) as con, con.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        return int(cur.fetchone()[0])


PLANNED_EVENTS = {  # how Dagster records a run's planned materializations: its own environment switches
    "per-partition": {},
    "batched": {"DAGSTER_EVENT_BATCH_SIZE": "1000"},
    "subset": {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"},
}


def planned_events_per_run(instance) -> float:
    """ASSET_MATERIALIZATION_PLANNED events recorded per queued run."""
    from dagster import DagsterEventType, EventRecordsFilter

    runs = instance.get_runs_count()
    recs = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION_PLANNED), limit=10**6)
    return len(recs) / max(1, runs)


def drive_daemon(ctx, instance, backfill_id: str, n: int, submit_workers: int, planned: str,
                 stop_after_runs: int | None) -> dict:
    """The backfill daemon's first iteration on the launched backfill, timed; stopped after `stop_after_runs` runs.

    Dagster 1.13 plans every run of an asset backfill in one iteration (at K clips per run,
    ceil(n / K) range runs: the clip assets are one multi-asset, nothing waits on a parent)
    and submits them all in that same iteration (`_submit_runs_and_update_backfill_in_chunks`
    in dagster/_core/execution/asset_backfill.py): one `create_run` + queue per run, and
    every DAGSTER_ASSET_BACKFILL_RUN_CHUNK_SIZE (25) runs the whole backfill is written back
    (its 192,903-partition subsets and the run requests still to submit) and re-read; the
    loop stops at such a chunk boundary when the backfill is no longer REQUESTED. So with
    `stop_after_runs`, a watcher thread cancels the backfill as the UI's Cancel does (status
    CANCELING) once that many runs exist, and the iteration ends at the next chunk boundary
    (set DAGSTER_ASSET_BACKFILL_RUN_CHUNK_SIZE in the environment to try another chunk size).

    Timed: planning (the iteration's start to the first run created: reading the backfill,
    evaluating every partition, writing the run requests), submission (first run to the
    last one seen, per run and per clip: create_run, the queue, the chunk writes between),
    the backfill writes themselves (the per-chunk fixed cost) and the tail after the stop.
    `pass_s_per_run` is what a whole pass pays per run: the submission without the writes
    that fell in the measured span, plus one write per chunk of runs."""
    import threading

    from dagster._core.execution.asset_backfill import get_asset_backfill_run_chunk_size
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._daemon.backfill import execute_backfill_iteration

    from concurrent.futures import ThreadPoolExecutor

    log = logging.getLogger("bench.backfill")
    daemon_instance = ctx.process_context.instance
    update_backfill = daemon_instance.update_backfill
    writes: list[tuple[float, float]] = []  # (start since t0, seconds) of each of the daemon's writes

    def timed_update(backfill):  # the daemon's writes of the backfill, timed (the watcher calls the original)
        t = time.perf_counter()
        try:
            return update_backfill(backfill)
        finally:
            writes.append((t - t0, time.perf_counter() - t))

    samples: list[tuple[float, int]] = []  # (seconds since the start, runs existing) at each change
    done = threading.Event()
    canceled_at: list[float] = []

    def watch():
        last = 0
        while not done.wait(0.1):
            count = instance.get_runs_count()
            if count != last:
                samples.append((time.perf_counter() - t0, count))
                last = count
            if stop_after_runs and count >= stop_after_runs:
                backfill = instance.get_backfill(backfill_id)
                if backfill.status == BulkActionStatus.REQUESTED:  # (again, if a chunk write raced it)
                    update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
                    canceled_at.append(time.perf_counter() - t0)

    # num_submit_workers in the instance's `backfills:` settings: the daemon submits a
    # backfill's runs from this many threads (job backfills; asset backfills submit in order)
    pool = ThreadPoolExecutor(submit_workers) if submit_workers else None
    switches = PLANNED_EVENTS[planned]
    os.environ.update(switches)
    daemon_instance.update_backfill = timed_update
    watcher = threading.Thread(target=watch, daemon=True)
    t0 = time.perf_counter()
    watcher.start()
    try:
        errors = [e for e in execute_backfill_iteration(ctx.process_context, log, submit_threadpool_executor=pool) if e]
        total = time.perf_counter() - t0
    finally:
        done.set()
        watcher.join()
        del daemon_instance.update_backfill
        for k in switches:
            os.environ.pop(k, None)
        if pool:
            pool.shutdown()
    assert not errors, errors[0].to_string()
    runs = instance.get_runs_count()
    samples.append((total, runs))
    first = next(t for t, c in samples if c >= 1)
    last_t, last_c = next((t, c) for t, c in samples if c == runs)
    k = int(os.environ.get("EGOCLEAN_CLIPS_PER_RUN", "1")) if os.environ.get("EGOCLEAN_EXECUTION") == "ray" else 1
    clips = min(n, runs * k)
    per_run = (last_t - first) / (runs - 1) if runs > 1 else total
    chunk = get_asset_backfill_run_chunk_size()
    durations = [d for _, d in writes]
    write_mean = sum(durations) / max(1, len(durations))
    # a pass pays one write per chunk: the per-run cost without the writes that fell between
    # the first and the last run seen, plus its share of a write
    between = sum(d for t, d in writes if first < t < last_t)
    per_run_pass = ((last_t - first - between) / (runs - 1) if runs > 1 else total) + write_mean / chunk
    row = {
        "submit_workers": submit_workers, "planned_events": planned, "stop_after_runs": stop_after_runs,
        "daemon_first_iteration_s": total, "runs_queued": runs, "clips_in_runs": clips,
        "daemon_planning_s": first, "daemon_submit_s_per_run": per_run,
        "daemon_submit_ms_per_clip": 1000 * per_run / k,
        "daemon_tail_s": total - last_t, "stopped": bool(canceled_at),
        # DAGSTER_ASSET_BACKFILL_RUN_CHUNK_SIZE: runs between two writes of the backfill
        "run_chunk_size": chunk, "backfill_writes": len(writes), "backfill_write_mean_s": write_mean,
        "backfill_write_max_s": max(durations, default=0.0), "pass_s_per_run": per_run_pass,
        "pass_ms_per_clip": 1000 * per_run_pass / k,
        # the whole iteration over the clips its runs hold (planning included: at a small
        # size it dominates; at full size it is paid once per pass)
        "daemon_s_per_run": total / max(1, runs), "daemon_ms_per_clip": 1000 * total / max(1, clips),
        "planned_events_per_run": planned_events_per_run(instance),
    }
    # one pass over every clip: planning once, then ceil(CLIPS / K) runs with one write per chunk
    row["pass_runs"] = -(-CLIPS // k)
    row["pass_projection_h"] = (first + row["pass_runs"] * per_run_pass) / 3600
    return row


def cli_create_runs(ctx, instance, keys: list[str], k: int, runs: int, planned: str) -> dict:
    """What the backfill CLI pays per Ray-mode run before launching it: `egoclean_assets.launch._create_run`.

    The CLI (`python -m egoclean_assets.backfill`, egoclean_assets/cluster/batching.py) cuts
    the clips into contiguous ranges of K and, for each, creates the range run from the code
    location's job subset (the execution plan from the code server, `create_run` with its
    planned events) and launches it (in the cluster: a Ray job); here `runs` ranges from the
    end of `keys` are created and not launched (the launch is the run launcher's, not timed)."""
    from dagster import AssetKey
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from egoclean_assets.backfill import QUIET  # the run config the CLI gives its runs
    from egoclean_assets.cluster import CLIP_ASSETS, contiguous_batches
    from egoclean_assets.launch import REPOSITORY, _create_run

    batches = contiguous_batches(keys, keys[-runs * k:], k)
    workspace = ctx.process_context.create_request_context()
    name = workspace.code_location_names[0]
    location = workspace.get_code_location(name)
    repo = location.get_repository(REPOSITORY)
    switches = PLANNED_EVENTS[planned]
    os.environ.update(switches)
    try:
        t0 = time.perf_counter()
        job = location.get_job(JobSubsetSelector(
            location_name=name, repository_name=REPOSITORY, job_name="clip_pipeline", op_selection=None,
            asset_selection=[AssetKey(a) for a in CLIP_ASSETS]))
        for b in batches:
            _create_run(instance, location, repo, job, QUIET,
                        {ASSET_PARTITION_RANGE_START_TAG: b[0], ASSET_PARTITION_RANGE_END_TAG: b[-1]})
        secs = time.perf_counter() - t0
    finally:
        for key in switches:
            os.environ.pop(key, None)
    clips = sum(map(len, batches))
    return {"cli_runs": len(batches), "cli_s_per_run": secs / len(batches), "cli_ms_per_clip": 1000 * secs / clips}


def measure(backend: str, n: int, ids: list[str], pg, tmp: Path, materialized: int, daemon: bool,
            submit_workers: int = 0, planned: str = "per-partition", daemon_runs: int | None = None,
            cli_runs: int = 0, storage: str = "egoclean") -> dict:
    from dagster import AssetKey, AssetMaterialization
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from egoclean_assets.partitions import CLIPS as PARTITIONS_NAME
    from egoclean_assets.partitions import add_clip_partitions

    keys = ids[:n]
    row: dict = {"backend": backend, "storage": storage, "partitions": n, "load_before": os.getloadavg()}
    with instance_for(backend, pg, tmp, storage) as instance:
        new, row["register_s"] = timed(lambda: add_clip_partitions(instance, keys))
        assert len(new) == n
        listed, row["list_s"] = timed(lambda: instance.get_dynamic_partitions(PARTITIONS_NAME))
        assert len(listed) == n
        _, row["has_partition_s"] = timed(lambda: instance.has_dynamic_partition(PARTITIONS_NAME, keys[-1]))
        sample = keys[:: max(1, n // materialized)][:materialized]

        def report():
            for k in sample:
                instance.report_runless_asset_event(AssetMaterialization(AssetKey(ASSET), partition=k))

        _, secs = timed(report)
        row["materialized"] = len(sample)
        row["report_ms_per_event"] = round(1000 * secs / max(1, len(sample)), 2)
        defs_file = str(ROOT / "egoclean_assets" / "definitions.py")
        with define_out_of_process_context(defs_file, "defs", instance) as ctx:
            variables = {"assetKey": {"path": [ASSET]}}
            for name, query in (("stats", PARTITION_STATS), ("status", PARTITION_STATUS)):
                for attempt in ("cold", "warm"):
                    res, secs = timed(lambda q=query: execute_dagster_graphql(ctx, q, variables))
                    assert not res.errors, res.errors
                    row[f"gql_{name}_{attempt}_s"] = secs
                if name == "stats":
                    stats = res.data["assetNodeOrError"]["partitionStats"]
                    assert stats["numPartitions"] == n and stats["numMaterialized"] == len(sample), stats
                else:
                    node = res.data["assetNodeOrError"]
                    row["gql_status_bytes"] = len(json.dumps(node))
            from egoclean_assets.assets import ALL_ASSETS
            from egoclean_assets.cluster import CLIP_ASSETS

            ray_mode = os.environ.get("EGOCLEAN_EXECUTION") == "ray"
            # Ray mode batches the clip assets (training_episodes stays one clip per run)
            selection = ([{"path": [a]} for a in CLIP_ASSETS] if ray_mode
                         else [{"path": list(k.path)} for a in ALL_ASSETS for k in a.keys])
            params = {"assetSelection": selection, "allPartitions": True, "title": f"all {n}"}
            res, row["backfill_launch_s"] = timed(
                lambda: execute_dagster_graphql(ctx, LAUNCH_BACKFILL, {"backfillParams": params}))
            assert not res.errors, res.errors
            out = res.data["launchPartitionBackfill"]
            assert out["__typename"] == "LaunchBackfillSuccess", out
            backfill, row["backfill_read_s"] = timed(lambda: instance.get_backfill(out["backfillId"]))
            assert backfill is not None
            if daemon:
                row.update(drive_daemon(ctx, instance, out["backfillId"], n, submit_workers, planned, daemon_runs))
                row["execution"] = "ray" if ray_mode else "local"
                row["clips_per_run"] = int(os.environ.get("EGOCLEAN_CLIPS_PER_RUN", "1")) if ray_mode else 1
                if cli_runs and ray_mode:
                    row.update(cli_create_runs(ctx, instance, keys, row["clips_per_run"], cli_runs, planned))
        row["instance_bytes"] = db_size(backend, instance, pg)
        row["load_after"] = os.getloadavg()
        print(f"  {backend} {n}: done", file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--sizes", default=f"1000,100000,{CLIPS}")
    p.add_argument("--materialized", type=int, default=200, help="materializations recorded per size")
    p.add_argument("--daemon-size", default="100",
                   help="comma-separated partitions of the extra rows that run the backfill daemon's first iteration "
                        f"(0: none; {CLIPS}: the full size)")
    p.add_argument("--daemon-runs", type=int, default=None,
                   help="stop the daemon's iteration once this many runs are queued (cancelling the backfill, "
                        "as the UI does; it stops at the next chunk of 25 runs); default: submit them all")
    p.add_argument("--cli-runs", type=int, default=0,
                   help="Ray mode, daemon rows: also create this many range runs as the backfill CLI does, timed")
    p.add_argument("--submit-workers", default="0,8",
                   help="daemon rows: run-submission threads of each (0: the daemon's default, one thread)")
    p.add_argument("--execution", choices=("local", "ray"), default="local",
                   help="ray: the clip assets batched K per run (EGOCLEAN_EXECUTION=ray)")
    p.add_argument("--clips-per-run", default=str(defaults.CLIPS_PER_RUN),
                   help="K in Ray mode (EGOCLEAN_CLIPS_PER_RUN), comma-separated: daemon rows for each")
    p.add_argument("--planned-events", default="per-partition",
                   help=f"daemon rows, comma-separated: {', '.join(PLANNED_EVENTS)} (see the module docstring)")
    p.add_argument("--storage", default="egoclean",
                   help="comma-separated, each row for each: egoclean (the project's yamls as they are) and/or "
                        "dagster (Dagster's own storage classes under the same instance class: the baseline)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.execution == "ray":  # read when the definitions load, in measure()
        os.environ["EGOCLEAN_EXECUTION"] = "ray"
    # SIGTERM (a timeout) unwinds like Ctrl-C, so the servers started below are stopped by pid
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING)
    ids = clip_ids()
    sizes = [int(s) for s in args.sizes.split(",")]
    ks = [int(k) for k in args.clips_per_run.split(",")] if args.execution == "ray" else [1]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmpd:
        tmp = Path(tmpd)
        pg = None
        try:
            if "postgres" in args.backends:
                from tests.support.servers import PostgresServer

                pg = PostgresServer().start()  # its own temp folder, which the postgres user can enter
            for backend in args.backends.split(","):
                runs = [(n, False, 0, "per-partition", ks[0]) for n in sizes if n]
                runs += [(int(d), True, int(w), planned, k) for k in ks for d in args.daemon_size.split(",") if int(d)
                         for w in args.submit_workers.split(",") for planned in args.planned_events.split(",")]
                storages = args.storage.split(",")
                for (n, daemon, workers, planned, k), storage in ((r, s) for r in runs for s in storages):
                    if args.execution == "ray":
                        os.environ["EGOCLEAN_CLIPS_PER_RUN"] = str(k)
                    row = measure(backend, n, ids, pg, tmp, min(args.materialized, n), daemon, workers, planned,
                                  args.daemon_runs, args.cli_runs, storage)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            if pg is not None:
                pg.stop()
    meta = run_meta()
    print(json.dumps(meta))
    print(machine_line())
    cols = ["backend", "partitions", "register_s", "list_s", "gql_stats_warm_s", "gql_status_warm_s",
            "gql_status_bytes", "backfill_launch_s", "backfill_read_s", "instance_bytes", "load_before"]
    daemon_cols = ["backend", "storage", "partitions", "clips_per_run", "planned_events", "submit_workers",
                   "runs_queued",
                   "daemon_first_iteration_s", "daemon_planning_s", "daemon_submit_s_per_run",
                   "daemon_submit_ms_per_clip", "backfill_write_mean_s", "pass_ms_per_clip", "pass_projection_h",
                   "cli_ms_per_clip", "load_before", "load_after"]
    for columns, which in ((cols, [r for r in rows if "runs_queued" not in r]),
                           (daemon_cols, [r for r in rows if "runs_queued" in r])):
        if not which:
            continue
        print(" | ".join(columns))
        for r in which:
            print(" | ".join(_cell(r.get(c, "-")) for c in columns))
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "/".join(f"{v:.2f}" for v in value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
