"""Phase 3 assets: the camera's path through each clip (visual odometry) and its picture."""


from dagster import AssetExecutionContext, MetadataValue, Output, asset

from egoclean_assets import pools
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import picture, shown
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import StoreResource

GROUP = "phase3_motion"


def store_trajectory(db, storage: ClipStorage, clip, tracked) -> None:
    """The clip's `trajectories` row and every frame's pose in the store, in one transaction (any data
    root, either store), for `tracked` (egoclean.motion.steps.Tracked) written into the clip's local folder."""
    db.replace_trajectory(tracked.moved({"parquet": storage.location(clip, tracked.parquet)}).row(), tracked.poses)


def trajectory_metadata(tracked, storage: ClipStorage, clip) -> dict:
    """What the camera_trajectory materialization shows (summary, speed, where the poses are); also
    recorded per clip by batched Ray runs (egoclean_assets.cluster.batch)."""
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
    store_trajectory(store.store(), storage, clip, tracked)
    return Output(ClipArtifact.of(clip, "camera_trajectory", tracked),
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
    from egoclean.motion.steps import draw_clip_path

    clip = clip_of(context)
    anomaly_segments.release()  # the spans are in the manifest
    drawn = draw_clip_path(clip.key, camera_trajectory.path("parquet"), storage.layout(clip).trajectory_plot,
                           anomaly_segments.info["spans"])
    # on the materialization only, as diagnostics_plot does (no second copy in STEP_OUTPUT)
    context.add_asset_metadata(trajectory_plot_metadata(drawn, drawn.png, storage.location(clip, drawn.png)))
    return Output(ClipArtifact.of(clip, "trajectory_plot", drawn))


def trajectory_plot_metadata(drawn, png: str, location: str) -> dict:
    """trajectory_plot's metadata for one clip (also recorded per clip by batched Ray runs).

    `drawn`: egoclean.motion.steps.PathDrawn; `png`: the picture's local copy; `location`: where it is stored."""
    return {
        "trajectory": picture(png, "camera path", location),
        "anomalous_spans": drawn.spans,
        "path": MetadataValue.path(location),
    }
