"""Phase 1 assets: fetch the raw clip, validate the worker's intrinsics, rectify the video."""


import contextlib
import tempfile
import time

from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset

from egoclean.core.errors import EgoCleanError
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import rate
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import RectifyResource, SourceResource

GROUP = "phase1_ingest"


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"video"}, tags={"egoclean/intermediate": "true"})
@reports_failures
def raw_tar(context: AssetExecutionContext, source: SourceResource, storage: ClipStorage) -> Output[ClipArtifact]:
    """The clip's raw fisheye MP4 and sidecar, taken from its worker's shard by ranged read.

    An intermediate: deleted once intrinsics and rectified_clip have both succeeded.
    """
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.media.video import probe

    clip = clip_of(context)
    t0 = time.perf_counter()
    fetched = source.open().fetch_clip(clip, storage.output_dir(clip, "raw_tar"), progress=False)
    seconds = time.perf_counter() - t0
    # The raw frame count is kept in the manifest: the rectified check needs it after
    # the raw clip itself has been deleted.
    info = probe(fetched.mp4_path)
    shard = getattr(fetched.shard, "name", None) or str(fetched.shard)
    artifact = ClipArtifact(
        clip.key,
        "raw_tar",
        files={"mp4": str(fetched.mp4_path), "sidecar": str(fetched.sidecar_path)},
        info={"video": info.as_dict(), "sidecar": dict(fetched.sidecar), "shard": shard},
    )
    return Output(
        artifact,
        metadata={
            "frames": info.n_frames,
            "fps": MetadataValue.float(info.fps),
            "duration_sec": MetadataValue.float(round(info.duration_sec, 3)),
            "size": f"{info.width}x{info.height}",
            "codec": info.codec,
            "size_mb": MetadataValue.float(round(fetched.size_bytes / 1e6, 3)),
            "shard": shard,
            "fetch_seconds": MetadataValue.float(round(seconds, 3)),
            "fetch_mb_per_sec": MetadataValue.float(rate(fetched.size_bytes / 1e6, seconds)),
            "intermediate": True,
        },
    )


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"json"})
@reports_failures
def intrinsics(
    context: AssetExecutionContext,
    raw_tar: ClipArtifact,
    source: SourceResource,
    rectify: RectifyResource,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """The worker's fisheye intrinsics validated, scaled to the clip, with the rectified pinhole matrix."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics

    clip = clip_of(context)
    where = f"{source.url}/{clip.worker_path}/intrinsics.json"
    fisheye = FisheyeIntrinsics.from_dict(
        source.open().read_intrinsics(clip.factory_dir, clip.worker_dir), source=where
    )
    # The decoded size, not the sidecar's claim, is what the maps will sample.
    video = raw_tar.info["video"]
    rect = rectified_intrinsics(fisheye, video["width"], video["height"], balance=rectify.balance)
    path = rect.save(storage.layout(clip).intrinsics)
    d = rect.to_dict()
    return Output(
        ClipArtifact(clip.key, "intrinsics", files={"json": str(path)}, info={"rectified": d}),
        metadata={
            "fisheye_size": f"{fisheye.image_width}x{fisheye.image_height}",
            "clip_size": f"{video['width']}x{video['height']}",
            "rectified_size": f"{d['image_width']}x{d['image_height']}",
            "K_new": MetadataValue.json(d["K"]),
            "balance": MetadataValue.float(rect.balance),
            "valid_fraction": MetadataValue.float(round(rect.valid_fraction, 4)),
            "path": MetadataValue.path(storage.location(clip, path)),
        },
    )


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"video"})
@reports_failures
def rectified_clip(
    context: AssetExecutionContext,
    raw_tar: ClipArtifact,
    intrinsics: ClipArtifact,
    rectify: RectifyResource,
    source: SourceResource,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """The clip rectified to a pinhole camera (same frames and frame rate), H.264 MP4."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.media.intrinsics import RectifiedIntrinsics
    from egoclean.media.rectify import rectify_video

    clip = clip_of(context)
    # The camera the intrinsics asset saved, read back as saved (K_new, balance, fov_scale).
    rect = RectifiedIntrinsics.load(intrinsics.layout.intrinsics)
    out = storage.layout(clip).rectified
    with contextlib.ExitStack() as stack:
        # raw_tar is deleted once consumed; re-running this asset alone fetches it again
        raw_mp4 = raw_tar.path("mp4") if raw_tar.files else stack.enter_context(
            _refetched(context, clip, source, storage))
        result = rectify_video(raw_mp4, rect, out, progress=False, **rectify.encode_kwargs())
    raw_frames = int(raw_tar.info["video"]["n_frames"])
    info = {
        "video": {k: result[k] for k in ("frames", "fps", "duration_sec", "width", "height", "size_bytes")},
        "raw_frames": raw_frames,
        "raw_fps": raw_tar.info["video"]["fps"],
    }
    return Output(
        ClipArtifact(clip.key, "rectified_clip", files={"mp4": str(out)}, info=info),
        metadata={
            "frames": result["frames"],
            "raw_frames": raw_frames,
            "fps": MetadataValue.float(result["fps"]),
            "duration_sec": MetadataValue.float(round(result["duration_sec"], 3)),
            "size": f"{result['width']}x{result['height']}",
            "size_mb": MetadataValue.float(round(result["size_bytes"] / 1e6, 3)),
            "seconds": MetadataValue.float(round(result["seconds"], 3)),
            "throughput_fps": MetadataValue.float(round(result["throughput_fps"], 2)),
            "crf": result["crf"],
            "preset": str(result["preset"]),
            "codecs": f"{result['decoder']} -> {result['encoder']}",  # NVDEC/NVENC or CPU ($EGOCLEAN_HWACCEL)
            "valid_fraction": MetadataValue.float(round(result["valid_fraction"], 4)),
            "path": MetadataValue.path(storage.location(clip, out)),
            "raw_refetched": not raw_tar.files,
        },
    )


@contextlib.contextmanager
def _refetched(context, clip, source: SourceResource, storage: ClipStorage):
    """The raw clip fetched again (ranged read) into a hidden folder removed afterwards; yields its MP4."""
    with tempfile.TemporaryDirectory(prefix=".refetch-", dir=storage.local_clip_dir(clip)) as tmp:
        t0 = time.perf_counter()
        try:
            fetched = source.open().fetch_clip(clip, tmp, progress=False)
        except EgoCleanError as e:
            raise Failure(description=f"the raw clip of {clip.key} (raw_tar) had been deleted after use and "
                          f"fetching it again failed: {e}", allow_retries=False) from None
        context.log.info(f"raw_tar of {clip.key} had been deleted after use; fetched it again from its shard "
                         f"({fetched.size_bytes / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s) for this step")
        yield fetched.mp4_path
