"""Phase 2 assets: V-JEPA 2 embeddings, similarity analysis, anomaly segments, pictures."""


import contextlib
import json
import time
from pathlib import Path

import numpy as np
from dagster import AssetExecutionContext, Backoff, Jitter, MetadataValue, Output, RetryPolicy, asset

from egoclean.core.errors import StoreBusyError
from egoclean_assets import pools
from egoclean_assets.failures import reports_failures
from egoclean_assets.io_manager import ClipArtifact, ClipStorage
from egoclean_assets.metadata import mmss, picture, rate, shown, spans_table
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import DetectionResource, EncoderResource, GroundTruthResource, StoreResource

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
    from egoclean.embed.encoder import embed_video

    clip = clip_of(context)
    enc = encoder.load()
    t0 = time.perf_counter()
    emb = embed_video(rectified_clip.path("mp4"), enc, batch_size=encoder.batch_size, progress=False)
    seconds = time.perf_counter() - t0
    files = emb.save(storage.layout(clip).embeddings)
    model = emb.meta.get("model", enc.model_id)
    info = {"video": rectified_clip.info["video"], "model": model, "random_weights": bool(enc.random_weights),
            "windows": len(emb)}
    return Output(
        ClipArtifact(clip.key, "vjepa_embeddings", files={k: str(v) for k, v in files.items()}, info=info),
        metadata={
            "windows": len(emb),
            "emb_shape": str(tuple(emb.emb.shape)),
            "temb_shape": str(tuple(emb.temb.shape)),
            "model": model + (" (random weights)" if enc.random_weights else ""),
            "random_weights": bool(enc.random_weights),
            "device": str(enc.device),
            "dtype": str(enc.dtype).replace("torch.", ""),
            "stride_frames": int(emb.meta.get("stride", 0)),
            "seconds": MetadataValue.float(round(seconds, 3)),
            "windows_per_sec": MetadataValue.float(rate(len(emb), seconds)),
            "path": MetadataValue.path(storage.location(clip, files["emb"])),
        },
    )


@asset(partitions_def=clip_partitions, group_name=GROUP, kinds={"numpy"})
@reports_failures
def similarity_matrix(
    context: AssetExecutionContext, vjepa_embeddings: ClipArtifact, storage: ClipStorage
) -> Output[ClipArtifact]:
    """Cosine self-similarity of the mean and temporal-token embeddings, change signal, autocorrelation, period."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.temporal.analysis import analyse
    from egoclean.embed.embeddings import Embeddings

    clip = clip_of(context)
    t0 = time.perf_counter()
    an = analyse(Embeddings.load(vjepa_embeddings.layout.embeddings, mmap=True), matrices=True)
    seconds = time.perf_counter() - t0
    files = an.save(storage.layout(clip).analysis)
    info = {"period_sec": an.period_sec, "step_sec": float(an.step_sec), "windows": int(len(an.ts)),
            "matrix_size": int(an.sim_mean.shape[0])}
    return Output(
        ClipArtifact(clip.key, "similarity_matrix", files={k: str(v) for k, v in files.items()}, info=info),
        metadata={
            "windows": int(len(an.ts)),
            "matrix_size": int(an.sim_mean.shape[0]),
            "subsampled": bool(an.matrices_subsampled),
            "period_sec": shown(an.period_sec) if an.period_sec is not None else "no clear period",
            "mean_change": shown(np.mean(an.change)) if len(an.change) else 0.0,
            "seconds": MetadataValue.float(round(seconds, 3)),
            "path": MetadataValue.path(storage.location(clip, files["sim_temporal"])),
        },
    )


def clip_row(clip, video: dict, storage: ClipStorage, segments_path, emb_location: str) -> dict:
    """The clip's row of the `clips` table (also written by batched Ray runs)."""
    return {"clip_id": clip.key, "n_frames": video["frames"], "fps": video["fps"], "width": video["width"],
            "height": video["height"], "duration_sec": video["duration_sec"],
            "paths": {"segments": storage.location(clip, segments_path),
                      "rectified": storage.final_layout(clip).rectified,
                      "embeddings": emb_location}}


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
    from egoclean.temporal.detection import detect
    from egoclean.temporal.segments import segments_document
    from egoclean.embed.embeddings import Embeddings

    clip = clip_of(context)
    params = detection.params()
    t0 = time.perf_counter()
    det = detect(Embeddings.load(vjepa_embeddings.layout.embeddings, mmap=True), params)
    seconds = time.perf_counter() - t0
    info = vjepa_embeddings.info
    video = info["video"]
    model = info["model"]
    doc = segments_document(clip.key, det, model, info["random_weights"], video["duration_sec"])
    path = storage.layout(clip).segments
    # The JSON gets its final name only once the rows are stored: a failed step leaves none.
    with atomic.atomic_path(path) as tmp, _store_errors(context):
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        db = store.store()
        # The ground_truth table is loaded only when its configuration or files changed;
        # replace_clip then judges this clip against it (the detection_eval view).
        db.sync_ground_truth(ground_truth.fingerprint(), ground_truth.load)
        rows = db.replace_clip(clip_row(clip, video, storage, path, vjepa_embeddings.location("emb")), det, model,
                               random_weights=info["random_weights"])
    spans = [{"start_sec": s.start_sec, "end_sec": s.end_sec, "start": mmss(s.start_sec), "end": mmss(s.end_sec),
              "peak_score": s.peak_score} for s in det.spans]
    return Output(
        ClipArtifact(clip.key, "anomaly_segments", files={"json": str(path)},
                     info={"spans": spans, "duration_sec": video["duration_sec"], "model": model,
                           "random_weights": info["random_weights"]}),
        metadata={
            "n_spans": len(det.spans),
            "spans": spans_table(det.spans),
            "work_spans": len(det.work_spans),
            "theta_on": shown(det.theta_on),
            "theta_off": shown(det.theta_off),
            "median": shown(det.median),
            "windows": int(len(det.ts)),
            "suppressed": bool(det.suppressed),
            "params": MetadataValue.json(params.to_dict()),
            "model": model + (" (random weights)" if info["random_weights"] else ""),
            "db_rows": MetadataValue.json(rows),
            "db": MetadataValue.path(db.location),
            "seconds": MetadataValue.float(round(seconds, 3)),
            "path": MetadataValue.path(storage.location(clip, path)),
        },
    )


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
    from egoclean.temporal.analysis import Analysis
    from egoclean.temporal.detection import Detection
    from egoclean.temporal.ground_truth import judge
    from egoclean.temporal.plots import DETECTION_THUMBNAIL_WIDTH, plot_detection, plot_diagnostics

    clip = clip_of(context)
    title = f"{clip.key} - {anomaly_segments.info['model']}" + (
        " (random weights)" if anomaly_segments.info["random_weights"] else "")
    out = storage.layout(clip)
    analysis = Analysis.load(similarity_matrix.layout.analysis)
    diag = plot_diagnostics(analysis, out.diagnostics_plot, title)
    doc = json.loads(Path(anomaly_segments.layout.segments).read_text())
    det = Detection.from_dict(doc)
    # the spans the check judges against, drawn only when it judges them
    verdict = judge(clip.key, det.spans, ground_truth.load().spans(clip.key), anomaly_segments.info["duration_sec"])
    detp = plot_detection(det, out.detection_plot, title, truth=verdict.truth if verdict.judged else None)
    # On the materialization only: Output metadata would be stored a second time in the
    # STEP_OUTPUT event, doubling the pictures' bytes in the event log (docs/SCALE.md). All of
    # it here, pictures first: Dagster lists output metadata before this, in this order.
    context.add_asset_metadata({
        "detection": picture(detp, "detection", storage.location(clip, detp), width=DETECTION_THUMBNAIL_WIDTH),
        "diagnostics": picture(diag, "diagnostics", storage.location(clip, diag)),
        "ground_truth": verdict.summary() if verdict.judged else f"not drawn: {verdict.reason}",
        "ground_truth_spans_drawn": len(verdict.truth) if verdict.judged else 0,
        "detection_path": MetadataValue.path(storage.location(clip, detp)),
        "diagnostics_path": MetadataValue.path(storage.location(clip, diag)),
    })
    return Output(
        ClipArtifact(clip.key, "diagnostics_plot", files={"diagnostics": str(diag), "detection": str(detp)}))
