"""Phase 3 assets: the camera's path through each clip (visual odometry) and its picture."""


from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from egoclean_assets import pools
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import picture, shown
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import StoreResource

GROUP = "phase3_motion"


def trajectory_metadata(tracked, storage: ClipStorage, clip) -> dict:
    """What the camera_trajectory materialization shows (summary, speed, where the poses are)."""
    s = tracked.summary
    return {
        "frames": int(s["frames"]),
        "tracked_fraction": shown(s["tracked_fraction"]),
        "segments": int(s["segments"]),
        "metric": bool(s["metric"]),
        "path_length": shown(s["path_length"]),
        "unit": "m" if s["metric"] else "clip unit (no floor found: not metric)",
        "seconds": MetadataValue.float(round(tracked.seconds, 3)),
        "frames_per_sec": MetadataValue.float(round(tracked.frames_per_sec, 2)),
        "path": MetadataValue.path(storage.location(clip, tracked.parquet)),
    }


@asset(partitions_def=clip_partitions, group_name=GROUP, pool=pools.DUCKDB, kinds={"opencv", "parquet"})
@reports_failures
def camera_trajectory(
    context: AssetExecutionContext,
    rectified_clip: ClipArtifact,
    intrinsics: ClipArtifact,
    store: StoreResource,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """The camera pose of every frame (monocular visual odometry on the rectified clip): Parquet, a store row."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.motion.steps import track

    clip = clip_of(context)
    out = storage.layout(clip).trajectory
    tracked = track(clip.key, rectified_clip.path("mp4"), intrinsics.layout.intrinsics, out)
    # the summary and every frame's pose, in one store transaction (any data root, either store)
    store.store().replace_trajectory(tracked.moved({"parquet": storage.location(clip, out)}).row(), tracked.poses)
    return Output(ClipArtifact(clip.key, "camera_trajectory", files=tracked.files, info=tracked.info()),
                  metadata=trajectory_metadata(tracked, storage, clip))


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"matplotlib"})
@reports_failures
def trajectory_plot(
    context: AssetExecutionContext,
    camera_trajectory: ClipArtifact,
    anomaly_segments: ClipArtifact,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """The camera path from above coloured by time (anomalous spans ringed), height and heading over time."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.motion.steps import draw_path

    clip = clip_of(context)
    spans = [(s["start_sec"], s["end_sec"]) for s in anomaly_segments.info["spans"]]
    anomaly_segments.release()  # the spans are in the manifest
    png = draw_path(camera_trajectory.path("parquet"), storage.layout(clip).trajectory_plot,
                    f"{clip.key} - camera path", spans)
    # on the materialization only, as diagnostics_plot does (no second copy in STEP_OUTPUT)
    context.add_asset_metadata({
        "trajectory": picture(png, "camera path", storage.location(clip, png)),
        "anomalous_spans": len(spans),
        "path": MetadataValue.path(storage.location(clip, png)),
    })
    return Output(ClipArtifact(clip.key, "trajectory_plot", files={"png": str(Path(png))}))
