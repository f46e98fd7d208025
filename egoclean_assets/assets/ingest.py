"""Phase 1 assets: fetch the raw clip, validate the worker's intrinsics, rectify the video.

Each asset is a shell over one library step (egoclean.ingest.steps, egoclean.media.steps)
and one metadata function beside it (`<asset>_metadata`), which batched Ray runs call too
(egoclean_assets.cluster): a fact added to a step is recorded in both modes or in neither.
"""

import contextlib
import tempfile
import time
from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset

from egoclean.core.errors import EgoCleanError
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import rate
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import RectifyResource, SourceResource

if TYPE_CHECKING:
    from egoclean.ingest.steps import Camera, Fetched
    from egoclean.media.steps import Rectified

GROUP = "phase1_ingest"


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"video"}, tags={"egoclean/intermediate": "true"})
@reports_failures
def raw_tar(context: AssetExecutionContext, source: SourceResource, storage: ClipStorage) -> Output[ClipArtifact]:
    """The clip's raw fisheye MP4 and sidecar, taken from its worker's shard by ranged read.

    An intermediate: deleted once intrinsics and rectified_clip have both succeeded.
    """
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.ingest.steps import fetch_raw

    clip = clip_of(context)
    fetched = fetch_raw(source.open(), clip, storage.output_dir(clip, "raw_tar"))
    return Output(ClipArtifact.of(clip, "raw_tar", fetched), metadata=raw_tar_metadata(fetched))


def raw_tar_metadata(fetched: "Fetched") -> dict:
    """raw_tar's metadata for one clip (also recorded per clip by batched Ray runs)."""
    video = fetched.video
    return {
        "frames": video["n_frames"],
        "fps": MetadataValue.float(video["fps"]),
        "duration_sec": MetadataValue.float(round(video["duration_sec"], 3)),
        "size": f"{video['width']}x{video['height']}",
        "codec": video["codec"],
        "size_mb": MetadataValue.float(round(fetched.size_bytes / 1e6, 3)),
        "shard": fetched.shard,
        "fetch_seconds": MetadataValue.float(round(fetched.seconds, 3)),
        "fetch_mb_per_sec": MetadataValue.float(rate(fetched.size_bytes / 1e6, fetched.seconds)),
        "intermediate": True,
    }


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
    from egoclean.ingest.steps import read_camera

    clip = clip_of(context)
    video = raw_tar.info["video"]
    camera = read_camera(source.open(), clip, video["width"], video["height"], storage.layout(clip).intrinsics,
                         balance=rectify.balance, source_url=source.url)
    return Output(ClipArtifact.of(clip, "intrinsics", camera), metadata=intrinsics_metadata(camera, storage, clip))


def intrinsics_metadata(camera: "Camera", storage: ClipStorage, clip) -> dict:
    """intrinsics' metadata for one clip (also recorded per clip by batched Ray runs)."""
    d = camera.rectified
    return {
        "fisheye_size": "{}x{}".format(*camera.fisheye_size),
        "clip_size": "{}x{}".format(*camera.clip_size),
        "rectified_size": f"{d['image_width']}x{d['image_height']}",
        "K_new": MetadataValue.json(d["K"]),
        "balance": MetadataValue.float(camera.balance),
        "valid_fraction": MetadataValue.float(round(camera.valid_fraction, 4)),
        "path": MetadataValue.path(storage.location(clip, camera.path)),
    }


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
    from egoclean.media.steps import rectify as rectify_step

    clip = clip_of(context)
    with contextlib.ExitStack() as stack:
        # raw_tar is deleted once consumed; re-running this asset alone fetches it again
        raw_mp4 = raw_tar.path("mp4") if raw_tar.files else stack.enter_context(
            _refetched(context, clip, source, storage))
        # The camera the intrinsics asset saved, read back as saved (K_new, balance, fov_scale).
        result = rectify_step(raw_mp4, intrinsics.layout.intrinsics, storage.layout(clip).rectified,
                              raw_tar.info["video"], rectify.encode_kwargs(), raw_refetched=not raw_tar.files)
    return Output(ClipArtifact.of(clip, "rectified_clip", result),
                  metadata=rectified_clip_metadata(result, storage, clip))


def rectified_clip_metadata(result: "Rectified", storage: ClipStorage, clip) -> dict:
    """rectified_clip's metadata for one clip (also recorded per clip by batched Ray runs)."""
    r = result.report
    return {
        "frames": r["frames"],
        "raw_frames": result.raw_frames,
        "fps": MetadataValue.float(r["fps"]),
        "duration_sec": MetadataValue.float(round(r["duration_sec"], 3)),
        "size": f"{r['width']}x{r['height']}",
        "size_mb": MetadataValue.float(round(r["size_bytes"] / 1e6, 3)),
        "seconds": MetadataValue.float(round(r["seconds"], 3)),
        "throughput_fps": MetadataValue.float(round(r["throughput_fps"], 2)),
        "crf": r["crf"],
        "preset": str(r["preset"]),
        "codecs": f"{r['decoder']} -> {r['encoder']}",  # NVDEC/NVENC or CPU ($EGOCLEAN_HWACCEL)
        "valid_fraction": MetadataValue.float(round(r["valid_fraction"], 4)),
        "path": MetadataValue.path(storage.location(clip, result.mp4)),
        "raw_refetched": result.raw_refetched,
    }


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
