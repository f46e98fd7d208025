"""Shared storage against the embedded default: segment-table rows/s and artifact MB/s.

Rows: W writer processes (1, 2, 4) each replace K clips of a realistic size (a 10-minute
clip: 600 window scores, a few segments, one clips row) through egoclean.store.Store,
once into the embedded DuckDB file (writers queue on its file lock) and once into the
shared DuckLake (catalog in a throwaway PostgreSQL, Parquet in moto's S3 server).
Artifacts: ClipStorage.publish / fetch of one file to and from an `s3://` root on moto,
against the same calls on a local root (publish leaves the file in place there, so the
local figure is a plain copy of the file into the root and back, through the page cache).

    python -m benchmarks.bench_shared_store                 # writers 1,2,4; 8 clips each
    python -m benchmarks.bench_shared_store --clips 4 --mb 32

Every server is on 127.0.0.1 and stopped by pid. moto is an in-memory Python server: its
MB/s bound what this measures, not what S3 or MinIO would do.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from benchmarks.common import ROOT, machine_line, ratio
from benchmarks.common import meta as run_meta

WINDOWS = 600  # a 10-minute clip at one window per second

WRITER = textwrap.dedent("""
    import sys, time
    from egoclean.store import Store
    from tests.store.test_store import clip_info, make_det
    url, data_path, first, k, n = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    st = Store(url, data_path=data_path, timeout_sec=600, retries=10_000)
    work = [(f"factory001_worker{{w:03d}}_00001", make_det(n, spans=((10.0, 40.0), (100.0, 130.0)),
             work=((0.0, 10.0),), seed=w)) for w in range(first, first + k)]
    print("ready", flush=True)
    sys.stdin.readline()  # every writer starts at once
    t0 = time.perf_counter()
    for clip, det in work:
        st.replace_clip(clip_info(clip, n), det, "bench")
    print(time.perf_counter() - t0, flush=True)
""")


def run_writers(url: str, data_path: str | None, writers: int, clips: int) -> dict:
    script = WRITER.format()
    # run from the repository root, where `python -c` finds egoclean and tests
    procs = [subprocess.Popen([sys.executable, "-c", script, url, data_path or "", str(1 + i * clips), str(clips),
                               str(WINDOWS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for i in range(writers)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdin.close()
        assert p.wait(1200) == 0
    wall = time.perf_counter() - t0
    rows_per_clip = 1 + 3 + WINDOWS  # clips + segments (2 anomaly, 1 work) + window_scores
    n = writers * clips
    return {"writers": writers, "clips": n, "rows": n * rows_per_clip, "wall_s": round(wall, 2),
            "rows_per_s": round(n * rows_per_clip / wall), "clips_per_s": round(n / wall, 2)}


def check_rows(url: str, expected: int) -> None:
    from egoclean.store import Store

    _, rows = Store(url).query("SELECT count(*), count(DISTINCT clip_id) FROM window_scores")
    assert rows[0] == (expected * WINDOWS, expected), rows


def bench_rows(pg, s3, tmp: Path, writer_counts: list[int], clips: int) -> list[dict]:
    out = []
    for w in writer_counts:
        db = tmp / f"embedded-{w}.duckdb"
        r = run_writers(str(db), None, w, clips) | {"store": "embedded DuckDB file"}
        check_rows(str(db), w * clips)
        out.append(r)
        print(json.dumps(r), flush=True)
        name = pg.createdb("lake_" + uuid.uuid4().hex[:8])
        bucket = "lake-" + uuid.uuid4().hex[:8]
        s3.create_bucket(bucket)
        url = f"ducklake:postgres:{pg.dsn(name)}"
        from egoclean.store import Store

        Store(url, data_path=f"s3://{bucket}/tables/").init()  # the lake exists before the clock starts
        r = run_writers(url, None, w, clips) | {"store": "shared DuckLake (PostgreSQL + S3)"}
        check_rows(url, w * clips)
        out.append(r)
        print(json.dumps(r), flush=True)
    return out


def bench_artifacts(s3, tmp: Path, mb: int, reps: int) -> list[dict]:
    from egoclean.core.ids import ClipId
    from egoclean_assets.io_manager import ClipStorage

    clip = ClipId.parse("factory001_worker001_00001")
    payload = os.urandom(mb * 1024 * 1024)
    bucket = "art-" + uuid.uuid4().hex[:8]
    s3.create_bucket(bucket)
    out = []
    for kind, root in (("local disk", str(tmp / "local-root")), ("s3 (moto)", f"s3://{bucket}/data")):
        storage = ClipStorage(data_root=root, work_dir=str(tmp / "work"))
        up, down = [], []
        for i in range(reps):
            src = tmp / f"src-{i}.bin"
            src.write_bytes(payload)
            dest_dir = storage.output_dir(clip, "bench")
            name = f"{clip.key}_bench{i}.bin"
            t0 = time.perf_counter()
            if storage.is_local:
                shutil.copyfile(src, dest_dir / name)  # what writing the output into the root costs
                os.sync()
            else:
                shutil.copyfile(src, dest_dir / name)
                storage.publish(clip, {"bin": str(dest_dir / name)})
            up.append(time.perf_counter() - t0)
            into = tmp / f"down-{i}"
            t0 = time.perf_counter()
            files = storage.fetch(clip, {"bin": name}, into)
            if storage.is_local:
                shutil.copyfile(files["bin"], tmp / f"read-{i}.bin")  # reading it back: a full copy
            down.append(time.perf_counter() - t0)
            got = Path(files["bin"]) if not storage.is_local else tmp / f"read-{i}.bin"
            assert got.stat().st_size == len(payload)
            shutil.rmtree(into, ignore_errors=True)
            src.unlink()
        r = {"artifact_store": kind, "mb": mb, "reps": reps, "upload_mb_s": round(mb * reps / sum(up), 1),
             "download_mb_s": round(mb * reps / sum(down), 1)}
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


def count_requests(s3, tmp: Path) -> dict:
    """S3 requests and bytes of one clip through the whole graph (a proxy counts them)."""
    from dagster import DagsterInstance
    from tests.support.servers import FaultProxy

    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model
    from egoclean_assets.definitions import build_definitions
    from egoclean_assets.io_manager import ClipIOManager, ClipStorage
    from egoclean_assets.partitions import add_clip_partitions
    from egoclean_assets.resources import EncoderResource, GroundTruthResource, SourceResource, StoreResource

    summary = write_dataset(tmp / "source", SynthConfig(clips=1, duration_sec=60.0))
    key = summary["clips"][0]["clip_id"]
    model = save_tiny_model(tmp / "tiny")
    bucket = "req-" + uuid.uuid4().hex[:8]
    s3.create_bucket(bucket)
    with FaultProxy(s3.port) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint
        storage = ClipStorage(data_root=f"s3://{bucket}/data", work_dir=str(tmp / "work"))
        res = {"source": SourceResource(url=str(tmp / "source"), cache_dir=str(tmp / "cache")),
               "encoder": EncoderResource(model=str(model), device="cpu"),
               "store": StoreResource(path=str(tmp / "req.duckdb")),
               "ground_truth": GroundTruthResource(include_seed=False, paths=[summary["ground_truth"]]),
               "storage": storage, "io_manager": ClipIOManager(storage=storage)}
        instance = DagsterInstance.ephemeral()
        add_clip_partitions(instance, [key])
        job = build_definitions(res).resolve_job_def("clip_pipeline")
        assert job.execute_in_process(partition_key=key, instance=instance).success
        os.environ["AWS_ENDPOINT_URL"] = s3.endpoint
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3.endpoint, skip_instance_cache=True)
    sizes = {p.rsplit("/", 1)[1].replace(key, "<clip>"): fs.size(p) for p in fs.find(bucket)}
    by_method: dict[str, int] = {}
    for method, _ in proxy.requests:
        by_method[method] = by_method.get(method, 0) + 1
    r = {"clip_seconds": 60.0, "requests": by_method, "objects": len(sizes), "bytes": sum(sizes.values()),
         "sizes": sizes}
    print(json.dumps(r), flush=True)
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writers", default="1,2,4")
    p.add_argument("--clips", type=int, default=8, help="clips per writer")
    p.add_argument("--mb", type=int, default=64, help="artifact size")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--requests", action="store_true",
                   help="only count the S3 requests and bytes of one 60 s synthetic clip through the graph")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    # SIGTERM (a timeout) unwinds like Ctrl-C, so the servers started below are stopped by pid
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from tests.support.servers import PostgresServer, S3Server

    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmpd, PostgresServer() as pg, S3Server() as s3:
        os.environ.update(s3.env())
        tmp = Path(tmpd)
        if args.requests:
            r = count_requests(s3, tmp)
            if args.out:
                Path(args.out).write_text(json.dumps(r, indent=2))
            return 0
        rows = bench_rows(pg, s3, tmp, [int(w) for w in args.writers.split(",")], args.clips)
        arts = bench_artifacts(s3, tmp, args.mb, args.reps)
    meta = run_meta()
    print(json.dumps(meta))
    print(machine_line())
    emb = {r["writers"]: r for r in rows if r["store"].startswith("embedded")}
    print("writers | embedded rows/s | shared rows/s | shared/embedded")
    for r in rows:
        if not r["store"].startswith("embedded"):
            e = emb[r["writers"]]
            print(f"{r['writers']} | {e['rows_per_s']} | {r['rows_per_s']} | {ratio(r['rows_per_s'], e['rows_per_s'])}")
    loc = arts[0]
    for a in arts[1:]:
        print(f"artifacts {a['mb']} MB: upload {a['upload_mb_s']} MB/s vs local {loc['upload_mb_s']} MB/s "
              f"({ratio(a['upload_mb_s'], loc['upload_mb_s'])}); download {a['download_mb_s']} MB/s vs local "
              f"{loc['download_mb_s']} MB/s ({ratio(a['download_mb_s'], loc['download_mb_s'])})")
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows, "artifacts": arts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
