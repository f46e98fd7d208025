"""A real local Ray cluster, run by tests/cluster/test_ray_pipeline.py inside a loopback-only network namespace.

Never run this on the host network: Ray binds every interface and probes an outside
address at start-up. The test starts it as
`unshare --net -- bash -c 'ip link set lo up && exec python -m tests.support.ray_scenario OUT_DIR'`.

One Ray head (2 CPUs, a GPU_STANDIN resource standing in for a GPU) serves every part,
so the cluster starts once:

- library: `run_clips` on two clips; the embeddings against today's single-process
  `embed_video` on the same rectified clips, the camera paths against `track` in this
  process (the same bytes); the actor's batches.
- s3: the library clips again with the data root in S3 (a moto server started here, on
  loopback): the tasks read and write the bucket themselves and leave no local files.
- faults: a worker running `fetch_rectify` is SIGKILLed, then the encoder actor's
  process is SIGKILLed while clips still have windows queued; both runs must end complete.
- dagster: the Ray-mode definitions backfill the demo-like clips in batches of K, then a
  batch with a clip that cannot be fetched.
- nodes: two worker nodes join; the encoder actor's node is lost mid-batch (raylet SIGKILLed).
- unhostable: the encoder's resource is on one worker node only; that node is lost
  mid-clip and none replaces it: the clip fails with ClusterError, it does not wait for ever.

It prints one JSON document (the last stdout line) that the test asserts on, and stops
the head by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from tests.support.ray_head import local_ray_head

ROOT = Path(__file__).resolve().parents[2]
# Every check of the clip assets, (asset, check), as clip_batch records them per clip.
CHECKS = (("rectified_clip", "same_frame_count"), ("vjepa_embeddings", "embeddings_valid"),
          ("similarity_matrix", "similarity_valid"), ("anomaly_segments", "matches_ground_truth"),
          ("camera_trajectory", "poses_valid"), ("camera_trajectory", "tracked_enough"),
          ("camera_trajectory", "head_motion_plausible"))


def proc_pids(marker: str) -> list[int]:
    """Pids of this network namespace (this scenario's own processes: never another test's Ray on the
    machine) whose command line (Ray sets `ray::<task>` as a busy worker's title) contains marker."""
    out = []
    mine = os.readlink("/proc/self/ns/net")
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "ns" / "net") != mine:
                    continue
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                out.append(int(d.name))
    return out


def reference_embeddings(rectified: list[str], model_dir: str) -> dict:
    """Today's single-process path (embed_video, batch 4) on the same rectified clips."""
    from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder

    enc = load_encoder(EncoderConfig(model=model_dir, device="cpu"))
    return {Path(p).name.removesuffix("_rectified.mp4"): embed_video(p, enc, batch_size=4, progress=False)
            for p in rectified}


def compare(results, refs) -> dict:
    from egoclean.embed.embeddings import Embeddings

    out = {}
    for r in results:
        got = Embeddings.load(r.embedded.files["emb"].removesuffix("_emb.npy"))
        ref = refs[r.clip_id]
        out[r.clip_id] = {
            "windows": len(got), "ref_windows": len(ref),
            "max_abs_emb": float(np.max(np.abs(got.emb - ref.emb))) if len(got) == len(ref) else None,
            "max_abs_temb": float(np.max(np.abs(got.temb - ref.temb))) if len(got) == len(ref) else None,
            "ts_equal": bool(len(got) == len(ref) and np.array_equal(got.ts, ref.ts)),
            "meta_equal": {k: got.meta.get(k) == ref.meta.get(k) for k in ("model", "stride", "n_windows", "fps")},
        }
    return out


def sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def compare_trajectories(results, work: Path) -> dict:
    """Each clip's camera path from Ray against `track` in this process on the same rectified clip and camera."""
    from egoclean.motion.steps import track

    out = {}
    for r in results:
        ref = track(r.clip_id, r.rectified.mp4, r.camera.path, work / "ref_trajectory" / f"{r.clip_id}.parquet")
        out[r.clip_id] = {"summary": r.tracked.summary, "ref_summary": ref.summary,
                          "same_bytes": sha256(r.tracked.parquet) == sha256(ref.parquet),
                          "picture": Path(r.path_drawn.png).is_file() and r.path_drawn.spans == len(r.segmented.spans)}
    return out


def part_library(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    from egoclean.cluster import ray_pipeline as rp

    # A batch waits up to 1 s for windows: the two clips' rectifications end at slightly
    # different times on a loaded machine, and the test wants a batch holding both.
    cfg = rp.RayConfig(actor_resources={"GPU_STANDIN": 1}, batch_size=4, batch_wait_s=1.0, send_windows=1,
                       in_flight=2, rectify_cpus=0.5, embed_cpus=0.5, analyse_cpus=0.5, trajectory_cpus=0.5)
    encoder = {"model": model, "device": "cpu"}
    jobs = [rp.ClipJob(c, str(work / "lib" / c)) for c in clips]
    done_order = []
    t0 = time.perf_counter()
    results = rp.run_clips(jobs, cfg, encoder, {"url": str(dataset)}, on_done=lambda r: done_order.append(r.clip_id))
    seconds = time.perf_counter() - t0
    stats = rp.actor_stats(cfg, encoder)[0]
    refs = reference_embeddings([r.rectified.mp4 for r in results], model)
    return {"ok": [r.ok for r in results], "errors": [r.error for r in results], "done_order": done_order,
            "seconds": seconds, "actor": stats, "compare": compare(results, refs),
            "trajectory": compare_trajectories([r for r in results if r.ok], work),
            "raw_left": [str(p) for p in (work / "lib").rglob("raw/*")]}


def part_s3(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    """The library part's clips again, with the data root in S3 (moto, on this namespace's loopback).

    The tasks fetch their inputs from the bucket and put their outputs there themselves,
    staging in a work folder of their own: nothing may be left in it, nor in the clips'
    local folders, and the bucket's files must match the local-root run's."""
    import json as _json

    from egoclean.cluster import ray_pipeline as rp
    from egoclean.embed.embeddings import Embeddings
    from egoclean.core.ids import ClipId
    from egoclean.core.layout import ClipLayout
    from egoclean.core.object_store import RemoteRoot

    server = _S3["server"]
    server.start()
    try:
        server.create_bucket("egoclean")
        root = "s3://egoclean/root"
        cfg = rp.RayConfig(actor_resources={"GPU_STANDIN": 1}, batch_size=4, batch_wait_s=0.2, send_windows=1,
                           in_flight=2, rectify_cpus=0.5, embed_cpus=0.5, analyse_cpus=0.5,
                           trajectory_cpus=0.5)
        jobs = [rp.ClipJob(c, str(work / "s3local" / c), store={"root": root, "retries": 2},
                           store_dir=ClipLayout.under(root, ClipId.parse(c)).dir, work_dir=str(work / "s3work"))
                for c in clips]
        results = rp.run_clips(jobs, cfg, {"model": model, "device": "cpu"}, {"url": str(dataset)})
        remote = RemoteRoot(root)
        fs = remote.fs()
        out: dict = {"ok": [r.ok for r in results], "errors": [r.error for r in results], "clips": {}}
        for j in jobs:
            local = ClipLayout(j.clip_id, str(work / "lib" / j.clip_id))
            final = ClipLayout(j.clip_id, j.store_dir)
            in_bucket = sorted(final.relative("s3://" + k) for k in fs.find(j.store_dir))
            in_local = sorted(str(p.relative_to(local.dir)) for p in Path(local.dir).rglob("*") if p.is_file())
            stage = work / "s3cmp" / j.clip_id
            for rel in in_bucket:
                remote.get(final.path(rel), str(stage / rel), fs=fs)
            got, ref = Embeddings.load(stage / j.clip_id), Embeddings.load(local.embeddings)
            seg_got = _json.loads((stage / f"{j.clip_id}_segments.json").read_text())
            seg_ref = _json.loads(Path(local.segments).read_text())
            out["clips"][j.clip_id] = {
                "bucket": in_bucket, "local_root": in_local,
                "max_abs_emb": float(np.max(np.abs(got.emb - ref.emb))) if len(got) == len(ref) else None,
                "segments_equal": seg_got == seg_ref,
                "same_bytes": {rel: (stage / rel).read_bytes() == (Path(local.dir) / rel).read_bytes()
                               for rel in in_bucket if rel.endswith((".json", ".mp4", ".parquet"))}}
        out["work_left"] = [str(p) for p in (work / "s3work").rglob("*") if p.is_file()]
        out["local_left"] = [str(p) for p in (work / "s3local").rglob("*")] if (work / "s3local").exists() else []
        return out
    finally:
        server.stop()


_S3: dict = {}


def part_faults(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    import ray

    from egoclean.cluster import ray_pipeline as rp

    # Its own actor name: batches wait long (1 s) for windows, so the kill finds calls queued.
    cfg = rp.RayConfig(actor_name="egoclean-encoder-faults", actor_resources={"GPU_STANDIN": 1}, batch_size=16,
                       batch_wait_s=1.0, send_windows=1, in_flight=2, rectify_cpus=0.5, embed_cpus=0.5,
                       analyse_cpus=0.5, trajectory_cpus=0.5, task_retries=2, actor_max_restarts=2,
                       actor_max_task_retries=3)
    encoder = {"model": model, "device": "cpu"}
    rp.connect(cfg)
    actor = rp.encoder_actors(cfg, encoder)[0]
    before = ray.get(actor.stats.remote())
    killed: dict = {"rectify_worker": None, "actor": None, "actor_batches_at_kill": None}

    def kill_rectify():
        deadline = time.time() + 120
        while time.time() < deadline and killed["rectify_worker"] is None:
            pids = proc_pids("ray::fetch_rectify")
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed["rectify_worker"] = pids[0]
                return
            time.sleep(0.01)

    def kill_actor():
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                s = ray.get(actor.stats.remote(), timeout=10)
            except Exception:
                time.sleep(0.05)
                continue
            if s["batches"] > before["batches"]:
                os.kill(s["pid"], signal.SIGKILL)
                killed["actor"], killed["actor_batches_at_kill"] = s["pid"], s["batches"]
                return
            time.sleep(0.02)

    killers = [threading.Thread(target=kill_rectify, daemon=True), threading.Thread(target=kill_actor, daemon=True)]
    for k in killers:
        k.start()
    jobs = [rp.ClipJob(c, str(work / "faults" / c)) for c in clips]
    results = rp.run_clips(jobs, cfg, encoder, {"url": str(dataset)})
    for k in killers:
        k.join(timeout=5)
    after = ray.get(actor.stats.remote())
    ray.kill(actor, no_restart=True)  # frees its stand-in GPU for the dagster part's actor
    refs = reference_embeddings([r.rectified.mp4 for r in results if r.ok], model)
    return {"ok": [r.ok for r in results], "errors": [r.error for r in results], "killed": killed,
            "load_id_before": before["load_id"], "load_id_after": after["load_id"],
            "pid_before": before["pid"], "pid_after": after["pid"],
            "compare": compare([r for r in results if r.ok], refs)}


def main(out_dir: str, parts: list[str]) -> None:
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    work = Path(out_dir)
    dataset = work / "source"
    # 160x96: the smallest size at which the camera path is tracked (at 96x72 no frame is)
    write_dataset(dataset, SynthConfig(workers=1, clips=5, duration_sec=6.0, width=160, height=96, anomalies=False))
    model = str(save_tiny_model(work / "tiny"))
    clips = [f"factory001_worker001_{i:05d}" for i in range(5)]
    # The s3 part's server: its address set now, so the Ray workers inherit it (s3fs reads AWS_*).
    from tests.support.servers import S3Server

    _S3["server"] = S3Server()
    os.environ.update(_S3["server"].env())
    report: dict = {}
    # Two stand-in GPUs: the library/dagster parts' actor and the faults part's own.
    with local_ray_head(num_cpus=2, resources={"GPU_STANDIN": 2}, log=work / "ray_head.log") as head:
        report["head_pid"] = head.pid
        for name, fn, args in (("library", part_library, clips[:2]), ("s3", part_s3, clips[:2]),
                               ("faults", part_faults, clips[2:4]),
                               ("dagster", part_dagster, clips[:4]), ("modes", part_modes, clips[:1]),
                               ("dagster_s3", part_dagster_s3, clips[:2]), ("nodes", part_nodes, clips[2:4]),
                               ("unhostable", part_unhostable, clips[:1])):
            if name in parts:
                t0 = time.perf_counter()
                print(f"scenario: {name} ...", file=sys.stderr, flush=True)
                report[name] = fn(work, dataset, model, args)
                print(f"scenario: {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(json.dumps(report, default=str))


def part_dagster(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    """Ray-mode definitions: a backfill of 4 clips with K=2, then a batch with a clip the source lacks."""
    import shutil

    import duckdb
    from dagster import AssetKey, DagsterInstance
    from dagster._core.definitions.asset_checks.asset_check_spec import AssetCheckKey

    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    # A batch waits up to 1 s for windows (as in the library part): each clip's camera path now runs beside
    # its embedding, so the two clips of a run can reach the actor further apart on a loaded machine, and the
    # backfill test wants a batch holding windows of two clips.
    os.environ.update({
        "DAGSTER_HOME": str(home), "EGOCLEAN_EXECUTION": "ray", "EGOCLEAN_CLIPS_PER_RUN": "2",
        "EGOCLEAN_RAY_ACTOR_RESOURCES": '{"GPU_STANDIN": 1}', "EGOCLEAN_RAY_BATCH_WAIT_S": "1.0",
        "EGOCLEAN_RAY_SEND_WINDOWS": "1", "EGOCLEAN_RAY_RECTIFY_CPUS": "0.5", "EGOCLEAN_RAY_EMBED_CPUS": "0.5",
        "EGOCLEAN_RAY_ANALYSE_CPUS": "0.5", "EGOCLEAN_RAY_TRAJECTORY_CPUS": "0.5",
        "EGOCLEAN_SOURCE": str(dataset), "EGOCLEAN_MODEL": model,
        "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DATA_ROOT": str(work / "data"),
        "EGOCLEAN_DB": str(work / "egoclean.duckdb"),
        "EGOCLEAN_GROUND_TRUTH": str(dataset / "ground_truth.csv"), "EGOCLEAN_GROUND_TRUTH_SEED": "0",
        "EGOCLEAN_CACHE": str(work / "cache"),
    })
    from egoclean.cluster import ray_pipeline as rp
    from egoclean_assets import backfill, cluster
    from egoclean_assets.definitions import build_definitions

    lines: list[str] = []
    defs = build_definitions()
    report: dict = {"assets": sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())}
    with DagsterInstance.get() as inst:
        t0 = time.perf_counter()
        report["backfill_failed_runs"] = backfill.backfill(["factory_001/worker_001"], inst, limit=len(clips),
                                                           out=lines.append)
        report["backfill_seconds"] = time.perf_counter() - t0
        # A batch whose second clip is registered but not in the source.
        bad = "factory001_worker001_00099"
        extra = f"factory001_worker001_{len(clips):05d}"
        inst.add_dynamic_partitions("clips", [extra, bad])
        report["bad_batch_failed_runs"] = cluster.run_batches(inst, [[extra, bad]], {"egoclean/test": "bad"},
                                                              backfill.QUIET, lines.append)
        report["lines"] = lines
        runs = inst.get_runs()
        # What the Overview timeline and the job page list: the code location's runs
        from dagster import RunsFilter

        listed = {r.run_id for r in inst.get_runs(RunsFilter(
            job_name="clip_pipeline", tags={".dagster/repository": "__repository__@egoclean_assets.definitions"}))}
        keep = ("dagster/asset_partition", "egoclean")
        report["runs"] = [{"status": r.status.value, "tags": {k: v for k, v in r.tags.items() if k.startswith(keep)},
                           "location": r.remote_job_origin.location_name if r.remote_job_origin else None,
                           "listed": r.run_id in listed,
                           "assets": sorted(k.to_user_string() for k in r.asset_selection or ())}
                          for r in runs]
        mats: dict = {}
        load_ids: dict = {}
        for a in cluster.CLIP_ASSETS:
            recs = inst.fetch_materializations(AssetKey(a), limit=1000).records
            per: dict = {}
            for rec in recs:
                m = rec.asset_materialization
                per[m.partition] = per.get(m.partition, 0) + 1
                if a == "vjepa_embeddings":
                    load_ids[m.partition] = m.metadata["encoder_load_id"].value
            mats[a] = per
        report["materializations"] = mats
        report["encoder_load_ids"] = load_ids
        checks: dict = {}
        for asset, name in CHECKS:
            hist = inst.event_log_storage.get_asset_check_execution_history(AssetCheckKey(AssetKey(asset), name),
                                                                            limit=1000)
            checks[name] = [[h.partition, h.status.value, _check_description(h)] for h in hist]
        report["checks"] = checks
    con = duckdb.connect(str(work / "egoclean.duckdb"), read_only=True)
    report["clip_rows"] = dict(con.execute("SELECT clip_id, count(*) FROM clips GROUP BY 1").fetchall())
    report["window_rows"] = dict(con.execute("SELECT clip_id, count(*) FROM window_scores GROUP BY 1").fetchall())
    report["trajectory_rows"] = dict(con.execute("SELECT clip_id, count(*) FROM trajectories GROUP BY 1").fetchall())
    report["pose_rows"] = dict(con.execute("SELECT clip_id, count(*) FROM poses GROUP BY 1").fetchall())
    con.close()
    cfg = defs.resources["ray_cluster"].config()
    enc = {"model": model, "revision": None, "device": "cpu", "dtype": "auto"}
    report["actor"] = rp.actor_stats(cfg, enc)[0]
    data = work / "data" / "factory_001" / "worker_001"
    rect = sorted(str(p) for p in data.glob("*/*_rectified.mp4"))
    refs = reference_embeddings(rect, model)
    from egoclean.embed.embeddings import Embeddings

    cmp = {}
    for key, ref in refs.items():
        got = Embeddings.load(data / key / key)
        cmp[key] = float(np.max(np.abs(got.emb - ref.emb))) if len(got) == len(ref) else None
    report["embeddings_max_abs"] = cmp
    report["raw_left"] = [str(p) for p in data.rglob("raw/*")]
    return report


def _dagster_env(work: Path, dataset: Path, model: str, name: str, **extra: str) -> Path:
    """Ray-mode settings for a Dagster part: its own instance, data root and store; returns DAGSTER_HOME."""
    import shutil

    home = work / f"dagster_home_{name}"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    os.environ.update({
        "DAGSTER_HOME": str(home), "EGOCLEAN_EXECUTION": "ray", "EGOCLEAN_CLIPS_PER_RUN": "2",
        "EGOCLEAN_RAY_ACTOR_RESOURCES": '{"GPU_STANDIN": 1}', "EGOCLEAN_RAY_BATCH_WAIT_S": "0.5",
        "EGOCLEAN_RAY_SEND_WINDOWS": "1", "EGOCLEAN_RAY_RECTIFY_CPUS": "0.5", "EGOCLEAN_RAY_EMBED_CPUS": "0.5",
        "EGOCLEAN_RAY_ANALYSE_CPUS": "0.5", "EGOCLEAN_RAY_TRAJECTORY_CPUS": "0.5",
        "EGOCLEAN_SOURCE": str(dataset), "EGOCLEAN_MODEL": model,
        "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DATA_ROOT": str(work / f"data_{name}"),
        "EGOCLEAN_DB": str(work / f"{name}.duckdb"),
        "EGOCLEAN_GROUND_TRUTH": str(dataset / "ground_truth.csv"), "EGOCLEAN_GROUND_TRUTH_SEED": "0",
        "EGOCLEAN_CACHE": str(work / "cache"), **extra,
    })
    return home


def _recorded(inst, clips: list[str]) -> dict:
    """Per clip asset: materializations per clip, and each check's [partition, status, description]."""
    from dagster import AssetKey
    from dagster._core.definitions.asset_checks.asset_check_spec import AssetCheckKey

    from egoclean_assets import cluster

    mats: dict = {}
    for a in cluster.CLIP_ASSETS:
        per: dict = {}
        for rec in inst.fetch_materializations(AssetKey(a), limit=1000).records:
            m = rec.asset_materialization
            if m.partition in clips:
                per[m.partition] = per.get(m.partition, 0) + 1
        mats[a] = per
    checks: dict = {}
    for asset, name in CHECKS:
        hist = inst.event_log_storage.get_asset_check_execution_history(AssetCheckKey(AssetKey(asset), name),
                                                                        limit=1000)
        checks[name] = [[h.partition, h.status.value, _check_description(h)] for h in hist if h.partition in clips]
    return {"materializations": mats, "checks": checks}


def part_dagster_s3(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    """A Ray-mode run of clip_batch, as a user runs it, with the data root in S3 (moto in this namespace)."""
    from dagster import DagsterInstance

    from egoclean.core.object_store import RemoteRoot
    from egoclean_assets import backfill, cluster
    from egoclean_assets.partitions import add_clip_partitions

    server = _S3["server"]
    server.start()
    try:
        server.create_bucket("egoclean-dagster")
        root = "s3://egoclean-dagster/root"
        _dagster_env(work, dataset, model, "s3", EGOCLEAN_DATA_ROOT=root, EGOCLEAN_WORK_DIR=str(work / "s3dagwork"))
        lines: list[str] = []
        with DagsterInstance.get() as inst:
            add_clip_partitions(inst, clips)
            failed = cluster.run_batches(inst, [clips], {"egoclean/test": "s3"}, backfill.QUIET, lines.append)
            report = {"failed_runs": failed, "lines": lines, **_recorded(inst, clips)}
        fs = RemoteRoot(root).fs()
        report["bucket"] = sorted(k.split("/root/", 1)[1] for k in fs.find(root))
        report["work_left"] = [str(p) for p in (work / "s3dagwork").rglob("*") if p.is_file()]
        return report
    finally:
        server.stop()


def part_modes(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    """One clip in local mode (today's graph, one clip per run) beside its Ray-mode run of the dagster part:
    every materialization's and check's metadata, key by key."""
    from dagster import AssetKey, DagsterInstance

    from egoclean_assets import cluster
    from egoclean_assets.definitions import build_definitions
    from egoclean_assets.partitions import add_clip_partitions

    clip = clips[0]
    ray_home = work / "dagster_home"  # the dagster part's instance: its Ray-mode runs
    with DagsterInstance.from_config(str(ray_home)) as inst:
        ray_meta = {}
        for a in cluster.CLIP_ASSETS:
            recs = [r for r in inst.fetch_materializations(AssetKey(a), limit=1000).records
                    if r.asset_materialization.partition == clip]
            ray_meta[a] = _plain(recs[-1].asset_materialization.metadata)
        ray_checks = {}
        from dagster._core.definitions.asset_checks.asset_check_spec import AssetCheckKey

        for asset, name in CHECKS:
            hist = inst.event_log_storage.get_asset_check_execution_history(AssetCheckKey(AssetKey(asset), name),
                                                                            limit=1000)
            ev = [h for h in hist if h.partition == clip][0].event.dagster_event.event_specific_data
            ray_checks[name] = {"passed": ev.passed, "metadata": _plain(ev.metadata)}
    saved = dict(os.environ)
    try:
        _dagster_env(work, dataset, model, "local", EGOCLEAN_EXECUTION="local")
        defs = build_definitions()
        with DagsterInstance.ephemeral() as local:
            add_clip_partitions(local, [clip])
            res = defs.resolve_job_def("clip_pipeline").execute_in_process(partition_key=clip, instance=local,
                                                                           raise_on_error=False)
            local_meta = {}
            for e in res.all_events:
                if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path[-1] in cluster.CLIP_ASSETS:
                    local_meta[e.asset_key.path[-1]] = _plain(e.event_specific_data.materialization.metadata)
            local_checks = {c.check_name: {"passed": c.passed, "metadata": _plain(c.metadata)}
                            for c in res.get_asset_check_evaluations()}
        # the poses each mode wrote (the materializations name the files: both roots are local)
        poses = {mode: sha256(meta["camera_trajectory"]["path"]) if "camera_trajectory" in meta else None
                 for mode, meta in (("local", local_meta), ("ray", ray_meta))}
        return {"clip": clip, "local_ok": res.success, "local": local_meta, "ray": ray_meta, "poses_sha256": poses,
                "local_checks": local_checks, "ray_checks": ray_checks}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _plain(metadata) -> dict:
    """Metadata values as JSON-able values (MetadataValue -> its value)."""
    out = {}
    for k, v in metadata.items():
        v = getattr(v, "value", v)
        out[k] = v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v)
    return out


def _raylet_of(node_id: str) -> int:
    """The pid of the raylet of Ray node `node_id` in this network namespace (its command line names the node)."""
    mine = os.readlink("/proc/self/ns/net")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().split(b"\0")
            if os.readlink(d / "ns" / "net") == mine and args[0].endswith(b"/raylet") and \
                    f"--node_id={node_id}".encode() in args:
                return int(d.name)
        except OSError:
            continue
    raise RuntimeError(f"no raylet for node {node_id}")


def _kill_actor_node_once_busy(name: str, namespace: str, on_kill) -> threading.Thread:
    """A started thread that SIGKILLs the raylet of actor `name`'s node once the actor has encoded a
    batch (so the kill lands mid-run), then calls on_kill(the actor's stats, the raylet's pid)."""
    import ray

    def run():
        end = time.time() + 300
        while time.time() < end:
            try:
                s = ray.get(ray.get_actor(name, namespace=namespace).stats.remote(), timeout=10)
            except Exception:
                time.sleep(0.05)
                continue
            if s["batches"] >= 1:
                raylet = _raylet_of(s["node_id"])
                os.kill(raylet, signal.SIGKILL)
                on_kill(s, raylet)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=run, daemon=True)
    killer.start()
    return killer


def part_nodes(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    """Two worker nodes join the head; the encoder actor lives on one of them. A Ray-mode run of clip_batch
    (as a user runs it) loses that node mid-batch (its raylet SIGKILLed): the actor restarts on the other
    node, the embed tasks on the head send their lost calls again, and the run ends complete."""
    import ray
    from dagster import AssetKey, DagsterInstance

    from egoclean.cluster import ray_pipeline as rp
    from egoclean_assets import backfill, cluster
    from egoclean_assets.definitions import build_definitions
    from egoclean_assets.partitions import add_clip_partitions

    nodes: list[subprocess.Popen] = []
    try:
        for i in range(2):
            _start_worker_node(work, f"node{i}", {"ENCODER_SLOT": 1}, nodes)
        # Batches wait long (1.5 s) for windows, so the node is lost with calls in flight.
        _dagster_env(work, dataset, model, "nodes", EGOCLEAN_RAY_ACTOR_NAME="egoclean-encoder-nodes",
                     EGOCLEAN_RAY_ACTOR_RESOURCES='{"ENCODER_SLOT": 1}', EGOCLEAN_RAY_BATCH_WAIT_S="1.5",
                     EGOCLEAN_RAY_BATCH_SIZE="16")
        defs = build_definitions()
        cfg = defs.resources["ray_cluster"].config()
        enc = {"model": model, "revision": None, "device": "cpu", "dtype": "auto"}
        name = rp.actor_name(cfg, enc, 0)
        killed: dict = {"raylet": None, "actor_pid": None, "load_id": None, "node_id": None, "head": None}
        head_node = ray.get_runtime_context().get_node_id()  # this driver's node: the head

        def killed_node(s: dict, raylet: int) -> None:
            killed.update(raylet=raylet, actor_pid=s["pid"], load_id=s["load_id"], node_id=s["node_id"],
                          head=s["node_id"] == head_node)

        killer = _kill_actor_node_once_busy(name, cfg.namespace, killed_node)
        lines: list[str] = []
        t0 = time.perf_counter()
        with DagsterInstance.get() as inst:
            add_clip_partitions(inst, clips)
            failed = cluster.run_batches(inst, [clips], {"egoclean/test": "nodes"}, backfill.QUIET, lines.append)
            report = {"failed_runs": failed, "lines": lines, "seconds": time.perf_counter() - t0,
                      **_recorded(inst, clips)}
            report["encoder_load_ids"] = {
                r.asset_materialization.partition: r.asset_materialization.metadata["encoder_load_id"].value
                for r in inst.fetch_materializations(AssetKey("vjepa_embeddings"), limit=100).records}
        killer.join(timeout=5)
        after = rp.actor_stats(cfg, enc)[0]
        report.update(killed=killed, load_id_after=after["load_id"], actor_pid_after=after["pid"],
                      alive_nodes=sum(1 for n in ray.nodes() if n["Alive"]))
        ray.kill(ray.get_actor(name, namespace=cfg.namespace), no_restart=True)
        return report
    finally:
        _stop_nodes(nodes)


def _start_worker_node(work: Path, name: str, resources: dict, nodes: list) -> None:
    """One worker node joined to the head (RAY_ADDRESS) with `resources` and no CPU (every task stays on the
    head; only an encoder actor, 0 CPUs, goes there); its `ray start` process appended to `nodes`.

    `ray start` gives a raylet 30 s to register; on a busy machine it is tried again."""
    import ray

    known = {n["NodeID"] for n in ray.nodes()}  # a node of an earlier part may still be counted alive
    for attempt in range(3):
        node = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", f"--address={os.environ['RAY_ADDRESS']}", "--block",
             "--node-ip-address=127.0.0.1", "--num-cpus=0", "--num-gpus=0", f"--resources={json.dumps(resources)}",
             "--disable-usage-stats"], env=dict(os.environ, RAY_ADDRESS=""),
            stdout=open(work / f"ray_{name}-{attempt}.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        nodes.append(node)
        deadline = time.time() + 120
        while time.time() < deadline and node.poll() is None:
            if any(n["Alive"] and n["NodeID"] not in known for n in ray.nodes()):
                return
            time.sleep(0.5)
    raise RuntimeError(f"worker node {name} did not join: {ray.nodes()}")


def _stop_nodes(nodes: list) -> None:
    """SIGKILL each worker node's process group (its `ray start`, raylet and workers), by pid."""
    for n in nodes:
        try:
            os.killpg(n.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        n.wait(timeout=30)


def part_unhostable(work: Path, dataset: Path, model: str, clips: list[str]) -> dict:
    """The encoder actor needs a resource (LONE_SLOT) that one worker node alone has; that node's raylet is
    SIGKILLed mid-clip and none replaces it. Ray restarts the actor, but no node can host it: the clip's
    encode calls must fail it with ClusterError within `encode_resend_s` (short here), not wait for ever."""
    import ray

    from egoclean.cluster import ray_pipeline as rp

    resend_s = 10.0
    cfg = rp.RayConfig(actor_name="egoclean-encoder-lone", actor_resources={"LONE_SLOT": 1}, batch_size=16,
                       batch_wait_s=1.0, send_windows=1, in_flight=2, rectify_cpus=0.5, embed_cpus=0.5,
                       analyse_cpus=0.5, trajectory_cpus=0.5, encode_resend_s=resend_s, actor_start_timeout_s=120)
    encoder = {"model": model, "device": "cpu"}
    nodes: list[subprocess.Popen] = []
    killed: dict = {"raylet": None, "at": None, "node_id": None}
    try:
        _start_worker_node(work, "lone", {"LONE_SLOT": 1}, nodes)
        name = rp.actor_name(cfg, encoder, 0)

        killer = _kill_actor_node_once_busy(
            name, cfg.namespace, lambda s, raylet: killed.update(raylet=raylet, at=time.time(), node_id=s["node_id"]))
        done_at: dict = {}
        jobs = [rp.ClipJob(c, str(work / "lone" / c)) for c in clips]
        results = rp.run_clips(jobs, cfg, encoder, {"url": str(dataset)},
                               on_done=lambda r: done_at.setdefault(r.clip_id, time.time()))
        killer.join(timeout=5)
        report = {"resend_s": resend_s, "killed": killed, "ok": [r.ok for r in results],
                  "failed_stage": [r.failed_stage for r in results], "errors": [r.error for r in results],
                  "seconds_after_kill": [round(done_at[r.clip_id] - killed["at"], 1) if killed["at"] else None
                                         for r in results],
                  "alive_nodes": sum(1 for n in ray.nodes() if n["Alive"])}
        with contextlib.suppress(Exception):  # restarting for ever: nothing can host it
            ray.kill(ray.get_actor(name, namespace=cfg.namespace), no_restart=True)
        return report
    finally:
        _stop_nodes(nodes)


def _check_description(record) -> str | None:
    """The description an asset check evaluation recorded (None for one only planned)."""
    event = record.event.dagster_event if record.event is not None else None
    data = getattr(event, "event_specific_data", None) if event is not None else None
    return getattr(data, "description", None)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(",") if len(sys.argv) > 2 else
         ["library", "s3", "faults", "dagster", "modes", "dagster_s3", "nodes", "unhostable"])
