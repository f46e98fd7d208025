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

--execution ray backfills the clip assets in Ray mode (`clip_batch`, K = --clips-per-run
clips per run); --planned-events chooses how Dagster records a run's
ASSET_MATERIALIZATION_PLANNED events, its own switches: `per-partition` (the default: one
event per asset and clip, each its own commit), `batched` (DAGSTER_EVENT_BATCH_SIZE: the
same events written in batches) or `subset` (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS:
one event per asset carrying the run's partition range).

Prints one JSON line per measurement and a table at the end. Not part of the test suite:
the full run takes minutes (PostgreSQL is started and stopped by the benchmark).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import ROOT, machine_line
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


def instance_for(backend: str, pg, tmp: Path):
    from dagster import DagsterInstance

    home = tmp / f"home-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    if backend == "sqlite":
        (home / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text())
    else:
        db = pg.createdb("dagster_" + uuid.uuid4().hex[:8])
        os.environ["EGOCLEAN_PG_URL"] = pg.url(db)
        (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.cluster.yaml").read_text())
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


def measure(backend: str, n: int, ids: list[str], pg, tmp: Path, materialized: int, daemon: bool,
            submit_workers: int = 0, planned: str = "per-partition") -> dict:
    from dagster import AssetKey, AssetMaterialization
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from egoclean_assets.partitions import CLIPS as PARTITIONS_NAME
    from egoclean_assets.partitions import add_clip_partitions

    keys = ids[:n]
    row: dict = {"backend": backend, "partitions": n}
    with instance_for(backend, pg, tmp) as instance:
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
                from dagster._daemon.backfill import execute_backfill_iteration

                from concurrent.futures import ThreadPoolExecutor

                log = logging.getLogger("bench.backfill")
                # num_submit_workers in the instance's `backfills:` settings: the daemon
                # submits a backfill's runs from this many threads
                pool = ThreadPoolExecutor(submit_workers) if submit_workers else None
                switches = PLANNED_EVENTS[planned]
                os.environ.update(switches)
                try:
                    _, row["daemon_first_iteration_s"] = timed(lambda: list(
                        execute_backfill_iteration(ctx.process_context, log, submit_threadpool_executor=pool)))
                finally:
                    for k in switches:
                        os.environ.pop(k, None)
                if pool:
                    pool.shutdown()
                row["submit_workers"] = submit_workers
                row["planned_events"] = planned
                row["execution"] = "ray" if ray_mode else "local"
                row["runs_queued"] = instance.get_runs_count()
                row["daemon_s_per_run"] = row["daemon_first_iteration_s"] / max(1, row["runs_queued"])
                row["daemon_ms_per_clip"] = 1000 * row["daemon_first_iteration_s"] / n
                row["planned_events_per_run"] = planned_events_per_run(instance)
        row["instance_bytes"] = db_size(backend, instance, pg)
        print(f"  {backend} {n}: done", file=sys.stderr, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--sizes", default=f"1000,100000,{CLIPS}")
    p.add_argument("--materialized", type=int, default=200, help="materializations recorded per size")
    p.add_argument("--daemon-size", type=int, default=100,
                   help="partitions of the extra row that runs the backfill daemon's first iteration (0: none)")
    p.add_argument("--submit-workers", default="0,8",
                   help="daemon rows: run-submission threads of each (0: the daemon's default, one thread)")
    p.add_argument("--execution", choices=("local", "ray"), default="local",
                   help="ray: the clip assets batched K per run (EGOCLEAN_EXECUTION=ray)")
    p.add_argument("--clips-per-run", type=int, default=16, help="K in Ray mode (EGOCLEAN_CLIPS_PER_RUN)")
    p.add_argument("--planned-events", default="per-partition",
                   help=f"daemon rows, comma-separated: {', '.join(PLANNED_EVENTS)} (see the module docstring)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.execution == "ray":  # read when the definitions load, in measure()
        os.environ.update({"EGOCLEAN_EXECUTION": "ray", "EGOCLEAN_CLIPS_PER_RUN": str(args.clips_per_run)})
    # SIGTERM (a timeout) unwinds like Ctrl-C, so the servers started below are stopped by pid
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING)
    ids = clip_ids()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmpd:
        tmp = Path(tmpd)
        pg = None
        try:
            if "postgres" in args.backends:
                from tests.support.servers import PostgresServer

                pg = PostgresServer().start()  # its own temp folder, which the postgres user can enter
            for backend in args.backends.split(","):
                runs = [(n, False, 0) for n in sizes if n]
                if args.daemon_size:
                    runs += [(args.daemon_size, True, int(w), planned) for w in args.submit_workers.split(",")
                             for planned in args.planned_events.split(",")]
                for n, daemon, workers, *planned in runs:
                    row = measure(backend, n, ids, pg, tmp, min(args.materialized, n), daemon, workers, *planned)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            if pg is not None:
                pg.stop()
    meta = run_meta()
    print(json.dumps(meta))
    print(machine_line())
    cols = ["backend", "partitions", "register_s", "list_s", "gql_stats_warm_s", "gql_status_warm_s",
            "gql_status_bytes", "backfill_launch_s", "daemon_first_iteration_s", "submit_workers", "runs_queued",
            "execution", "planned_events", "planned_events_per_run", "daemon_ms_per_clip", "instance_bytes"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r.get(c):.3g}" if isinstance(r.get(c), float) else str(r.get(c, "-")) for c in cols))
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
