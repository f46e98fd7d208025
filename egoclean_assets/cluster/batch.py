"""The batched Ray step: one multi-asset materializes the nine clip assets of K clips per run.

Chosen by configuration only (`EGOCLEAN_EXECUTION=ray`; default `local` is today's graph,
one clip per run, no Ray). In Ray mode the definitions hold `clip_batch`, a multi-asset
with the same asset keys, groups, lineage and checks as the local assets, and
`BackfillPolicy.multi_run(K)` (`EGOCLEAN_CLIPS_PER_RUN`), so a backfill of N clips is
about N/K runs. The step's body is the Ray driver (`egoclean.cluster.ray_pipeline.run_clips`):
each clip runs fetch+rectify -> embed (resident encoder actors) -> analyse+detect, and
fetch+rectify -> camera path -> its picture (after analyse+detect: it marks the anomalous
spans), on the cluster, and as each clip finishes this step

- writes each asset's manifest (the same files and facts the local assets write, so a
  later local run can load them),
- logs one materialization per asset and clip (`partition=clip`), and one check
  evaluation per check and clip (a range run's own checks would record no partition),
- writes the clip's rows to the store (this process is the single writer).

Clips that fail are named in the step's failure after the others were recorded; the
stages a failed clip did finish are recorded too.
"""


import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    multi_asset,
)

from egoclean.core.ids import ClipId
from egoclean.settings import Settings
from egoclean_assets.assets import ALL_ASSETS
from egoclean_assets.assets.ingest import intrinsics_metadata, raw_tar_metadata, rectified_clip_metadata
from egoclean_assets.assets.motion import store_trajectory, trajectory_metadata, trajectory_plot_metadata
from egoclean_assets.assets.temporal import (
    diagnostics_metadata,
    embeddings_metadata,
    segments_metadata,
    similarity_metadata,
    store_rows,
)
from egoclean_assets.checks import (
    ALL_CHECKS,
    check_embeddings_valid,
    check_head_motion_plausible,
    check_matches_ground_truth,
    check_poses_valid,
    check_same_frame_count,
    check_similarity_valid,
    check_tracked_enough,
    load_trajectory,
)
from egoclean_assets.cluster.resource import RayClusterResource, ray_resource_from_env
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage, file_checks, new_manifest
from egoclean_assets.partitions import clip_partitions
from egoclean_assets.resources import (
    DetectionResource,
    EncoderResource,
    GroundTruthResource,
    RectifyResource,
    SourceResource,
    StoreResource,
)


# The per-clip assets the batch materializes (the phase 1, 2 and 3 groups); others stay as they are.
CLIP_ASSETS = ("raw_tar", "intrinsics", "rectified_clip", "vjepa_embeddings", "similarity_matrix", "anomaly_segments",
               "diagnostics_plot", "camera_trajectory", "trajectory_plot")


def _is_clip_asset(a) -> bool:
    return any(k.path[-1] in CLIP_ASSETS for k in a.keys)


def _specs():
    """The local clip assets' specs and check specs, made skippable: the batch records clips one by one."""
    specs = [spec.replace_attributes(skippable=True) for a in ALL_ASSETS if _is_clip_asset(a) for spec in a.specs]
    checks = [c for chk in ALL_CHECKS for c in chk.check_specs if c.asset_key.path[-1] in CLIP_ASSETS]
    return specs, checks


def ray_graph(env: Mapping[str, str] | None = None) -> tuple[list, list, dict]:
    """(assets, checks, extra resources) of Ray mode: clip_batch in place of the clip assets and their checks."""
    assets = [build_clip_batch(Settings.from_env(env).clips_per_run)] + [a for a in ALL_ASSETS
                                                                          if not _is_clip_asset(a)]
    checks = [c for c in ALL_CHECKS if not any(s.asset_key.path[-1] in CLIP_ASSETS for s in c.check_specs)]
    return assets, checks, {"ray_cluster": ray_resource_from_env(env)}


def _record(context, storage: ClipStorage, clip: ClipId, asset: str, files: dict, info: dict,
            metadata: dict | Callable[[ClipArtifact], dict], consumed: dict | None = None) -> tuple[ClipArtifact, dict]:
    """Manifest + materialization of one asset of one clip; returns (the artifact the checks read, the manifest).

    `metadata`: the materialization's entries, or a function of the stored artifact that
    gives them (diagnostics_plot's pictures, drawn from the local copies the checks read)."""
    if storage.is_local:
        rel, checks = storage.publish_checked(clip, files) if files else ({}, {})
    else:  # the Ray task uploaded them itself (its node need not share this one's disk)
        base = storage.local_clip_dir(clip)
        rel = {role: Path(p).relative_to(base).as_posix() for role, p in files.items()}
    # As the IO manager loads it (local files in the clip's folder; remote roots: downloaded
    # for the checks into a folder of their own, removed by art.release()).
    here = storage.local_clip_dir(clip)
    into = None
    if rel and not storage.is_local:
        runs = storage.step_download_dir(context.run.run_id, "clip_batch")
        runs.mkdir(parents=True, exist_ok=True)
        into = Path(tempfile.mkdtemp(dir=runs))
    local = storage.fetch(clip, rel, into or here) if rel else {}
    if not storage.is_local:  # measured on the copies just downloaded, as the task uploaded them
        checks = file_checks(local, rel)
    manifest = new_manifest(clip, asset, context.run.run_id, rel, info, consumed, checks)
    storage.write_manifest(clip, asset, manifest)
    art = ClipArtifact(clip.key, asset, files=local, info=info,
                       locations={role: storage.final_layout(clip).path(r) for role, r in rel.items()},
                       download_dir=str(into) if into else None, folder=str(into or here))
    if callable(metadata):
        metadata = metadata(art)
    context.log_event(AssetMaterialization(
        asset_key=AssetKey(asset), partition=clip.key,
        metadata={"location": MetadataValue.path(storage.clip_url(clip)), "execution": "ray", **metadata}))
    return art, manifest


def _check(context, clip: ClipId, asset: str, name: str, result) -> None:
    """Log a check result for one clip (an AssetCheckResult from checks.py) with its partition."""
    context.log_event(AssetCheckEvaluation(
        asset_key=AssetKey(asset), check_name=name, passed=bool(result.passed), metadata=result.metadata or {},
        description=result.description, severity=result.severity, partition=clip.key))


def _checked(context, clip: ClipId, asset: str, name: str, art: ClipArtifact, check) -> None:
    """Run one check on an artifact and log it; the artifact's downloaded copies go after."""
    try:
        _check(context, clip, asset, name, check(art))
    finally:
        art.release()


def _record_clip(context, storage: ClipStorage, ground_truth: GroundTruthResource, db, r) -> None:
    """Everything one finished clip (done or failed) leaves in Dagster and the store.

    Each asset's files, facts and metadata come from its step's typed result through the
    same functions the local assets call (egoclean_assets.assets); a check whose asset was
    not produced is recorded as not evaluated, with the clip's failure as the reason."""
    clip = ClipId.parse(r.clip_id)
    checked: set[str] = set()

    def check(asset: str, name: str, art: ClipArtifact, fn) -> None:
        _checked(context, clip, asset, name, art, fn)
        checked.add(name)

    if r.rectified is not None:
        # The raw clip was deleted by the task once rectified: recorded as the IO manager does.
        _, raw_m = _record(context, storage, clip, "raw_tar", {}, r.fetched.info(), raw_tar_metadata(r.fetched))
        raw_rel = {k: os.path.relpath(v, storage.local_clip_dir(clip)) for k, v in r.fetched.files.items()}
        raw_m["deleted"] = {"files": raw_rel, "at": time.time(), "after": ["intrinsics", "rectified_clip"]}
        storage.write_manifest(clip, "raw_tar", raw_m)
        consumed = {"raw_tar": raw_m["generation"]}
        _record(context, storage, clip, "intrinsics", r.camera.files, r.camera.info(),
                intrinsics_metadata(r.camera, storage, clip), consumed)[0].release()
        deleted = [storage.final_layout(clip).path(rel) for rel in raw_rel.values()]
        art, _ = _record(context, storage, clip, "rectified_clip", r.rectified.files, r.rectified.info(),
                         rectified_clip_metadata(r.rectified, storage, clip)
                         | {"deleted_intermediates": MetadataValue.json(deleted)}, consumed)
        check("rectified_clip", "same_frame_count", art, check_same_frame_count)
    if r.embedded is not None:
        e = r.embedded
        art, _ = _record(context, storage, clip, "vjepa_embeddings", e.files, e.info(),
                         embeddings_metadata(e, storage, clip))
        check("vjepa_embeddings", "embeddings_valid", art, check_embeddings_valid)
    if r.drawn is not None:
        e, seg = r.embedded, r.segmented
        art, _ = _record(context, storage, clip, "similarity_matrix", r.analysed.files, r.analysed.info(),
                         similarity_metadata(r.analysed, storage, clip))
        check("similarity_matrix", "similarity_valid", art, check_similarity_valid)
        rows = store_rows(db, storage, clip, seg, seg.json, r.rectified.video, storage.location(clip, e.files["emb"]))
        art, _ = _record(context, storage, clip, "anomaly_segments", seg.files, seg.info(),
                         segments_metadata(seg, rows, db.location, storage, clip))
        check("anomaly_segments", "matches_ground_truth", art,
              lambda art: check_matches_ground_truth(clip, art, ground_truth))
        art, _ = _record(context, storage, clip, "diagnostics_plot", r.drawn.files, r.drawn.info(),
                         lambda art: diagnostics_metadata(r.drawn, art.files, art.locations))
        art.release()
    if r.tracked is not None:
        t = r.tracked
        store_trajectory(db, storage, clip, t)
        art, _ = _record(context, storage, clip, "camera_trajectory", t.files, t.info(),
                         trajectory_metadata(t, storage, clip))
        # the three checks read one copy of the poses (the asset's checks in local mode load it each)
        traj = load_trajectory(art)
        for name, result in (("poses_valid", lambda: check_poses_valid(traj)),
                             ("tracked_enough", lambda: check_tracked_enough(art.info)),
                             ("head_motion_plausible", lambda: check_head_motion_plausible(traj))):
            _check(context, clip, "camera_trajectory", name, result())
            checked.add(name)
    if r.path_drawn is not None:
        p = r.path_drawn
        art, _ = _record(context, storage, clip, "trajectory_plot", p.files, p.info(),
                         lambda art: trajectory_plot_metadata(p, art.files["png"], art.locations["png"]))
        art.release()
    if not r.ok:
        context.log.error(f"clip {r.clip_id} failed in {r.failed_stage}: {r.error}")
        for spec in _specs()[1]:
            if spec.name not in checked:
                _not_evaluated(context, clip, spec.asset_key, spec.name, r)


def _not_evaluated(context, clip: ClipId, asset_key: AssetKey, name: str, r) -> None:
    """Record a check of a clip whose asset was never produced: not passed, with the clip's failure as the reason.

    Without it the check stays PLANNED in its history for good (the run planned it for
    every clip of the range). Severity WARN: the data was not judged bad, it was not made."""
    why = f"{r.failed_stage} failed: {r.error}"
    context.log_event(AssetCheckEvaluation(
        asset_key=asset_key, check_name=name, passed=False, severity=AssetCheckSeverity.WARN, partition=clip.key,
        description=f"not evaluated: {asset_key.to_user_string()} of {clip.key} was not produced ({why})",
        metadata={"result": "not evaluated", "failed_stage": r.failed_stage, "error": r.error or ""}))


def build_clip_batch(k: int):
    """The batched multi-asset over the clip assets, K clips per run."""
    specs, check_specs = _specs()

    @multi_asset(name="clip_batch", specs=specs, check_specs=check_specs, partitions_def=clip_partitions,
                 backfill_policy=BackfillPolicy.multi_run(k), can_subset=False)
    @reports_failures
    def clip_batch(
        context: AssetExecutionContext,
        source: SourceResource,
        encoder: EncoderResource,
        rectify: RectifyResource,
        detection: DetectionResource,
        store: StoreResource,
        ground_truth: GroundTruthResource,
        storage: ClipStorage,
        ray_cluster: RayClusterResource,
    ):
        """Every clip asset of a range of clips, each clip's stages run on Ray (see egoclean_assets.cluster)."""
        # imported here, not at module top: the Ray stages are needed only in Ray mode
        from egoclean.cluster.ray_pipeline import ClipJob, run_clips

        clips = [ClipId.parse(k) for k in context.partition_keys]
        gt = ground_truth.load()
        if storage.is_local:
            jobs = [ClipJob(c.key, storage.layout(c).dir, gt.spans(c.key)) for c in clips]
        else:  # each task reads its inputs from the root and puts its outputs there itself
            remote = {"root": storage.data_root, "retries": storage.retries, "timeout_sec": storage.timeout_sec}
            jobs = [ClipJob(c.key, str(storage.local_clip_dir(c)), gt.spans(c.key), store=remote,
                            store_dir=storage.clip_url(c), work_dir=storage.work_dir) for c in clips]
        db = store.store()
        # loaded only when the configuration or its files changed (egoclean.temporal.ground_truth)
        db.sync_ground_truth(ground_truth.fingerprint(), lambda: gt)
        src = {"url": source.url, "revision": source.revision}
        src |= {k: getattr(source, k) for k in ("endpoint", "cache_dir", "retries", "timeout", "backoff")
                if getattr(source, k) is not None}
        enc = {"model": encoder.model, "revision": encoder.revision, "device": encoder.device, "dtype": encoder.dtype}
        context.log.info(f"{len(clips)} clip(s) on Ray: {', '.join(c.key for c in clips)}")
        t0 = time.perf_counter()
        try:
            results = run_clips(jobs, ray_cluster.config(), enc, src, detection=detection.params().to_dict(),
                                balance=rectify.balance, encode_kwargs=rectify.encode_kwargs(),
                                on_done=lambda r: _record_clip(context, storage, ground_truth, db, r))
        finally:
            if not storage.is_local:  # the checks' downloads (each removed after its check already)
                shutil.rmtree(storage.step_download_dir(context.run.run_id, "clip_batch").parent, ignore_errors=True)
        failed = [r for r in results if not r.ok]
        context.log.info(f"{len(results) - len(failed)} of {len(results)} clip(s) done in "
                         f"{time.perf_counter() - t0:.1f} s")
        if failed:
            raise Failure(
                description=f"{len(failed)} of {len(results)} clip(s) failed: "
                + "; ".join(f"{r.clip_id} ({r.failed_stage}: {r.error})" for r in failed),
                metadata={"failed_clips": MetadataValue.json([r.clip_id for r in failed])},
            )
        # Every result was logged per clip above; the check outputs still need a value to end the
        # step (Nothing-like, no further evaluation is recorded).
        for output_name in context.assets_def.check_specs_by_output_name:
            yield Output(None, output_name=output_name)

    return clip_batch
