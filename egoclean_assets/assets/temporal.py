"""Phase 2 assets: V-JEPA 2 embeddings, similarity analysis, anomaly segments, pictures.

Each asset is a shell over one library step (egoclean.embed.steps, egoclean.temporal.steps)
and one metadata function beside it, which batched Ray runs call too (egoclean_assets.cluster).
"""

import contextlib
from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, Backoff, Jitter, MetadataValue, Output, RetryPolicy, asset

from egoclean.core.errors import StoreBusyError
from egoclean.embed.steps import model_label
from egoclean_assets import pools
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import picture, rate, shown, spans_table
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import DetectionResource, EncoderResource, GroundTruthResource, StoreResource

if TYPE_CHECKING:
    from egoclean.embed.steps import Embedded
    from egoclean.temporal.steps import Analysed, Drawn, Segmented

GROUP = "phase2_temporal"

# A DuckDB file held by another process (a notebook, `duckdb` shell) fails the write
# after the store's own bounded wait (StoreBusyError, naming the holder); Dagster then
# retries the step after 15 s, 30 s, 60 s (+-jitter), releasing the `duckdb` slot while it waits.
STORE_BUSY_RETRY = RetryPolicy(max_retries=3, delay=15, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


@asset(partitions_def=clip_partitions, group_name=GROUP, pool=pools.GPU, kinds={"pytorch"})
@reports_failures
def vjepa_embeddings(
    context: AssetExecutionContext, rectified_clip: ClipArtifact, encoder: EncoderResource, storage: ClipStorage
) -> Output[ClipArtifact]:
    """V-JEPA 2 embeddings of 64-frame windows every second: mean (N, 1024), temporal (N, 32, 1024), times."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.embed.steps import embed

    clip = clip_of(context)
    result = embed(rectified_clip.path("mp4"), encoder.load(), storage.layout(clip).embeddings,
                   rectified_clip.info["video"], batch_size=encoder.batch_size)
    return Output(ClipArtifact.of(clip, "vjepa_embeddings", result),
                  metadata=embeddings_metadata(result, storage, clip))


def embeddings_metadata(result: "Embedded", storage: ClipStorage, clip) -> dict:
    """vjepa_embeddings' metadata for one clip (also recorded per clip by batched Ray runs)."""
    e = result.encoder
    return {
        "windows": result.windows,
        "emb_shape": str(tuple(result.emb_shape)),
        "temb_shape": str(tuple(result.temb_shape)),
        "model": model_label(result.model, result.random_weights),
        "random_weights": result.random_weights,
        "device": e["device"],
        "dtype": e["dtype"],
        # the same id on many clips: one resident encoder served them; two (a,b): the actor restarted mid-clip
        "encoder_load_id": e["load_id"],
        "stride_frames": result.stride,
        "seconds": MetadataValue.float(round(result.seconds, 3)),
        "windows_per_sec": MetadataValue.float(rate(result.windows, result.seconds)),
        "path": MetadataValue.path(storage.location(clip, result.files["emb"])),
    }


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"numpy"})
@reports_failures
def similarity_matrix(
    context: AssetExecutionContext, vjepa_embeddings: ClipArtifact, storage: ClipStorage
) -> Output[ClipArtifact]:
    """Cosine self-similarity of the mean and temporal-token embeddings, change signal, autocorrelation, period."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.temporal.steps import analyse_clip

    clip = clip_of(context)
    result = analyse_clip(vjepa_embeddings.layout.embeddings, storage.layout(clip).analysis)
    return Output(ClipArtifact.of(clip, "similarity_matrix", result),
                  metadata=similarity_metadata(result, storage, clip))


def similarity_metadata(result: "Analysed", storage: ClipStorage, clip) -> dict:
    """similarity_matrix's metadata for one clip (also recorded per clip by batched Ray runs)."""
    return {
        "windows": result.windows,
        "matrix_size": result.matrix_size,
        "subsampled": result.subsampled,
        "period_sec": shown(result.period_sec) if result.period_sec is not None else "no clear period",
        "mean_change": shown(result.mean_change) if result.mean_change is not None else 0.0,
        "seconds": MetadataValue.float(round(result.seconds, 3)),
        "path": MetadataValue.path(storage.location(clip, result.files["sim_temporal"])),
    }


def store_rows(db, storage: ClipStorage, clip, result: "Segmented", segments_path, video: dict,
               emb_location: str) -> dict:
    """Write the clip's rows (clips, segments, window_scores) for its detection; returns the row counts.

    Called by anomaly_segments and by batched Ray runs (whose driver is the store's one writer)."""
    # imported here, not at module top: the egoclean.store package imports duckdb
    from egoclean.store.rows import clip_row

    row = clip_row(clip.key, video, segments=storage.location(clip, segments_path),
                   rectified=storage.final_layout(clip).rectified, embeddings=emb_location)
    return db.replace_clip(row, result.detection, result.model, random_weights=result.random_weights)


@contextlib.contextmanager
def _store_errors(context):
    """A busy database is logged (naming the holder) and goes on to STORE_BUSY_RETRY; reports_failures
    turns it and any other EgoClean error into the step's one-line failure."""
    try:
        yield
    except StoreBusyError as e:
        context.log.warning(f"{e} (attempt {context.retry_number + 1}; Dagster retries the step)")
        raise


@asset(partitions_def=clip_partitions, group_name=GROUP, pool=pools.DUCKDB, kinds={"duckdb"},
       retry_policy=STORE_BUSY_RETRY)
@reports_failures
def anomaly_segments(
    context: AssetExecutionContext,
    vjepa_embeddings: ClipArtifact,
    detection: DetectionResource,
    store: StoreResource,
    ground_truth: GroundTruthResource,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """Anomalous (and work) spans from temporal-token typicality, as JSON and rows in DuckDB."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.core import atomic
    from egoclean.temporal.steps import segment

    clip = clip_of(context)
    info = vjepa_embeddings.info
    video = info["video"]
    result = segment(clip.key, vjepa_embeddings.layout.embeddings, detection.params(), info["model"],
                     info["random_weights"], video["duration_sec"])
    path = storage.layout(clip).segments
    # The JSON gets its final name only once the rows are stored: a failed step leaves none.
    with atomic.atomic_path(path) as tmp, _store_errors(context):
        result.write(tmp)
        db = store.store()
        # The ground_truth table is loaded only when its configuration or files changed;
        # replace_clip then judges this clip against it (the detection_eval view).
        db.sync_ground_truth(ground_truth.fingerprint(), ground_truth.load)
        rows = store_rows(db, storage, clip, result, path, video, vjepa_embeddings.location("emb"))
    result = result.at(path)
    return Output(ClipArtifact.of(clip, "anomaly_segments", result),
                  metadata=segments_metadata(result, rows, db.location, storage, clip))


def segments_metadata(result: "Segmented", rows: dict, db_location: str, storage: ClipStorage, clip) -> dict:
    """anomaly_segments' metadata for one clip (also recorded per clip by batched Ray runs)."""
    det = result.detection
    return {
        "n_spans": len(det.spans),
        "spans": spans_table(det.spans),
        "work_spans": len(det.work_spans),
        "theta_on": shown(det.theta_on),
        "theta_off": shown(det.theta_off),
        "median": shown(det.median),
        "windows": int(len(det.ts)),
        "suppressed": bool(det.suppressed),
        "params": MetadataValue.json(result.params),
        "model": model_label(result.model, result.random_weights),
        "db_rows": MetadataValue.json(rows),
        "db": MetadataValue.path(db_location),
        "seconds": MetadataValue.float(round(result.seconds, 3)),
        "path": MetadataValue.path(storage.location(clip, result.json)),
    }


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"matplotlib"})
@reports_failures
def diagnostics_plot(
    context: AssetExecutionContext,
    similarity_matrix: ClipArtifact,
    anomaly_segments: ClipArtifact,
    ground_truth: GroundTruthResource,
    storage: ClipStorage,
) -> Output[ClipArtifact]:
    """The diagnostics picture (change, both similarity matrices, autocorrelation) and the detection picture."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.temporal.steps import draw

    clip = clip_of(context)
    result = draw(clip.key, similarity_matrix.layout.analysis, anomaly_segments.layout.segments,
                  ground_truth.load().spans(clip.key), storage.layout(clip))
    # On the materialization only: Output metadata would be stored a second time in the
    # STEP_OUTPUT event, doubling the pictures' bytes in the event log (docs/SCALE.md). All of
    # it here, pictures first: Dagster lists output metadata before this, in this order.
    context.add_asset_metadata(diagnostics_metadata(
        result, result.files, {role: storage.location(clip, f) for role, f in result.files.items()}))
    return Output(ClipArtifact.of(clip, "diagnostics_plot", result))


def diagnostics_metadata(result: "Drawn", files: dict, locations: dict) -> dict:
    """diagnostics_plot's metadata for one clip, pictures first (also recorded per clip by batched Ray runs).

    `files`: the pictures' local copies; `locations`: where they are stored (role -> path or URL)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules (matplotlib)
    from egoclean.temporal.plots import DETECTION_THUMBNAIL_WIDTH

    return {
        "detection": picture(files["detection"], "detection", locations["detection"], width=DETECTION_THUMBNAIL_WIDTH),
        "diagnostics": picture(files["diagnostics"], "diagnostics", locations["diagnostics"]),
        "ground_truth": result.ground_truth,
        "ground_truth_spans_drawn": result.truth_drawn,
        "detection_path": MetadataValue.path(locations["detection"]),
        "diagnostics_path": MetadataValue.path(locations["diagnostics"]),
    }
