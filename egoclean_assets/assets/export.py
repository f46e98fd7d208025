"""Phase 3 assets: each clip's training episodes, and the LeRobot v3.0 dataset built from them."""


from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, Output, asset

from egoclean_assets import pools
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import mmss, shown
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import ExportResource, StoreResource

GROUP = "phase3_export"


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"json"})
@reports_failures
def training_episodes(
    context: AssetExecutionContext,
    rectified_clip: ClipArtifact,
    intrinsics: ClipArtifact,
    vjepa_embeddings: ClipArtifact,
    similarity_matrix: ClipArtifact,
    anomaly_segments: ClipArtifact,
    camera_trajectory: ClipArtifact,
    export: ExportResource,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """The clip's training episodes: clean work spans cut at work-cycle boundaries and tracking gaps (as exported)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.core import atomic
    from egoclean.export import clip_input_from_files, plan_table
    from egoclean.motion.trajectory import Trajectory

    clip = clip_of(context)
    ci = clip_input_from_files(clip.key, rectified_clip.path("mp4"), anomaly_segments.path("json"),
                               similarity_matrix.layout.analysis, intrinsics.path("json"),
                               vjepa_embeddings.path("emb"), camera_trajectory.path("parquet"))
    table = plan_table(ci.plan(export.options().params), ci.fps, Trajectory.load_parquet(ci.trajectory))
    path = atomic.write_json(storage.layout(clip).episodes, table)
    rows = ["| # | start | end | cycle | cycles |", "|---|---|---|---|---|"] + [
        f"| {i} | {mmss(e['start_sec'])} ({e['start_sec']:.2f} s) | {mmss(e['end_sec'])} ({e['end_sec']:.2f} s) | "
        f"{e['cycle_index']} | {e['n_cycles']} |" for i, e in enumerate(table["episodes"])]
    return Output(
        ClipArtifact(clip.key, "training_episodes", files={"json": str(path)},
                     info={"episodes": len(table["episodes"]), "kept_sec": table["kept_sec"]}),
        metadata={
            "episodes": len(table["episodes"]),
            "kept_sec": MetadataValue.float(round(table["kept_sec"], 3)),
            "period_sec": shown(table["cycle"]["period_sec"]) if table["cycle"] else "no clear period",
            "table": MetadataValue.md("\n".join(rows)),
            # seconds to the millisecond for display; the JSON file keeps full precision
            "skipped": MetadataValue.json([{k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}
                                           for s in table["skipped"]]),
            "path": MetadataValue.path(storage.location(clip, path)),
        },
    )


@asset(group_name=GROUP, deps=[AssetKey("training_episodes")], pool=pools.DUCKDB, kinds={"parquet"})
@reports_failures
def lerobot_dataset(context: AssetExecutionContext, store: StoreResource, export: ExportResource) -> MaterializeResult:
    """The LeRobot v3.0 dataset of every materialized clip's episodes (new clips appended, re-materialized replaced)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.export import dataset_card, export_from_store, loading_code

    report = export_from_store(store.store(), export.out, options=export.options())
    context.log.info(report.summary())
    return MaterializeResult(metadata={
        # first: how to use what this asset made (the UI lists entries in this order)
        "load_with_lerobot": MetadataValue.md(f"```python\n{loading_code(report.out)}\n```"),
        "path": MetadataValue.path(str(report.out)),
        "episodes": report.total_episodes,
        "frames": report.total_frames,
        "episodes_added": report.episodes_new,  # of clips the dataset did not hold before
        "episodes_rewritten": report.episodes_rewritten,  # of re-exported clips, replacing...
        "episodes_replaced": report.episodes_removed,  # ...their episodes removed
        "clips_unchanged": len(report.unchanged),
        "kept_sec": MetadataValue.float(round(report.kept_sec, 3)),
        "dropped_sec": MetadataValue.float(round(report.dropped_sec, 3)),
        "skipped": MetadataValue.json(report.skipped),
        # exported, but in fixed-length pieces: the clip's analysis could not be read (clip -> why)
        "no_cycle_cuts": MetadataValue.json(report.no_cycle_cuts),
        "video_mb": MetadataValue.float(round(report.bytes_video / 1e6, 3)),
        "seconds": MetadataValue.float(round(report.seconds, 3)),
        "dataset_card": MetadataValue.md(dataset_card(report.out)),
    })
