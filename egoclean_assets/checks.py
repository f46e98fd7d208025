"""Asset checks: detections against ground truth, and the data invariants of each stage."""

import warnings

import numpy as np
from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, PreviewWarning, asset_check

from egoclean.core import defaults

from egoclean_assets.failures import reports_failures
from egoclean_assets.assets.export import lerobot_dataset
from egoclean_assets.assets.ingest import rectified_clip
from egoclean_assets.assets.motion import camera_trajectory
from egoclean_assets.assets.temporal import anomaly_segments, similarity_matrix, vjepa_embeddings
from egoclean_assets.io_manager import ClipArtifact
from egoclean_assets.metadata import mmss, shown
from egoclean_assets.partitions import clip_of, clip_partitions
from egoclean_assets.resources import ExportResource, GroundTruthResource, StoreResource

# Checks are partitioned like their assets so each clip gets its own result in the UI;
# Dagster 1.13 marks partitioned checks as a preview feature and warns on each import.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)
SYMMETRY_ATOL = 1e-4
FRAME_SAMPLES = 8  # episodes whose frames frames_match_rectified decodes and compares
DIAGONAL_ATOL = 1e-3


@asset_check(asset=anomaly_segments, partitions_def=clip_partitions, blocking=False)
@reports_failures
def matches_ground_truth(
    context: AssetCheckExecutionContext, anomaly_segments: ClipArtifact, ground_truth: GroundTruthResource
) -> AssetCheckResult:
    """Every ground-truth span matched by a detection at IoU >= 0.5, and no detection without one."""
    return check_matches_ground_truth(clip_of(context), anomaly_segments, ground_truth)


def check_matches_ground_truth(
    clip, anomaly_segments: ClipArtifact, ground_truth: GroundTruthResource
) -> AssetCheckResult:
    """matches_ground_truth's result for one clip (also called per clip by batched Ray runs)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.temporal.ground_truth import judge

    anomaly_segments.release()  # spans and duration are in the manifest; no file needed
    duration = float(anomaly_segments.info["duration_sec"])
    spans = [(s["start_sec"], s["end_sec"]) for s in anomaly_segments.info["spans"]]
    verdict = judge(clip.key, spans, ground_truth.load().spans(clip.key), duration)
    if not verdict.truth:
        return AssetCheckResult(passed=True, metadata={"result": "no ground truth for this clip"})
    if not verdict.judged:
        return AssetCheckResult(
            passed=False,
            description=verdict.reason,
            metadata={"result": "duration mismatch", "clip_duration_sec": duration,
                      "ground_truth_duration_sec": verdict.labelled_duration_sec},
        )
    ev = verdict.evaluation
    rows = ["| truth | label | best IoU | matched | start error s | end error s |", "|---|---|---|---|---|---|"]
    for t in ev.truth:
        err = lambda v: "" if v is None else f"{v:+.1f}"  # noqa: E731
        rows.append(f"| {mmss(t.start_sec)}-{mmss(t.end_sec)} | {t.label} | {t.best_iou:.3f} | "
                    f"{'yes' if t.matched else 'NO'} | {err(t.start_error_sec)} | {err(t.end_error_sec)} |")
    extra = [f"{mmss(d['start_sec'])}-{mmss(d['end_sec'])} (best IoU {d['best_iou']:.3f})"
             for d in ev.unmatched_detections]
    return AssetCheckResult(
        passed=bool(ev.passed),
        description=None if ev.passed else (
            f"{sum(not t.matched for t in ev.truth)} ground-truth span(s) missed, "
            f"{len(ev.unmatched_detections)} detection(s) without ground truth"),
        metadata={
            "per_span": MetadataValue.md("\n".join(rows)),
            "unmatched_detections": MetadataValue.json(extra),
            "per_span_iou": MetadataValue.json([round(t.best_iou, 4) for t in ev.truth]),
            "precision": shown(ev.precision),
            "recall": shown(ev.recall),
            "iou_threshold": MetadataValue.float(defaults.IOU_THRESHOLD),
            "clip_duration_sec": duration,
        },
    )


@asset_check(asset=rectified_clip, partitions_def=clip_partitions)
@reports_failures
def same_frame_count(context: AssetCheckExecutionContext, rectified_clip: ClipArtifact) -> AssetCheckResult:
    """The rectified clip has as many frames as the raw clip, at the same frame rate."""
    return check_same_frame_count(rectified_clip)


def check_same_frame_count(rectified_clip: ClipArtifact) -> AssetCheckResult:
    """same_frame_count's result for one clip."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.media.video import probe

    info = probe(rectified_clip.path("mp4"))
    raw_frames = int(rectified_clip.info["raw_frames"])
    raw_fps = float(rectified_clip.info["raw_fps"])
    rectified_clip.release()
    passed = info.n_frames == raw_frames and abs(info.fps - raw_fps) <= 1e-3 * raw_fps
    return AssetCheckResult(
        passed=passed,
        metadata={"rectified_frames": info.n_frames, "raw_frames": raw_frames,
                  "rectified_fps": MetadataValue.float(info.fps), "raw_fps": MetadataValue.float(raw_fps)},
    )


@asset_check(asset=vjepa_embeddings, partitions_def=clip_partitions)
@reports_failures
def embeddings_valid(context: AssetCheckExecutionContext, vjepa_embeddings: ClipArtifact) -> AssetCheckResult:
    """Embeddings are finite, one per window ((frames - 64) // stride + 1), with matching shapes."""
    return check_embeddings_valid(vjepa_embeddings)


def check_embeddings_valid(vjepa_embeddings: ClipArtifact) -> AssetCheckResult:
    """embeddings_valid's result for one clip."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.embed.embeddings import Embeddings
    from egoclean.embed.windows import n_windows

    emb = Embeddings.load(vjepa_embeddings.layout.embeddings, mmap=True)
    video = vjepa_embeddings.info["video"]
    expected = n_windows(int(video["frames"]), float(video["fps"]))
    finite = bool(np.isfinite(emb.emb).all() and all(np.isfinite(t).all() for t in emb.temb)
                  and np.isfinite(emb.ts).all())
    n = len(emb)
    shapes_ok = emb.emb.shape[0] == n and emb.temb.shape[0] == n and emb.temb.shape[2] == emb.emb.shape[1]
    increasing = bool(np.all(np.diff(emb.ts) > 0))
    problems = [p for p, ok in (("non-finite values", finite), (f"{n} windows, expected {expected}", n == expected),
                                ("shapes disagree", shapes_ok), ("window times not increasing", increasing)) if not ok]
    result = AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={"windows": n, "expected_windows": expected, "emb_shape": str(tuple(emb.emb.shape)),
                  "temb_shape": str(tuple(emb.temb.shape)), "finite": finite},
    )
    vjepa_embeddings.release()
    return result


@asset_check(asset=similarity_matrix, partitions_def=clip_partitions)
@reports_failures
def similarity_valid(context: AssetCheckExecutionContext, similarity_matrix: ClipArtifact) -> AssetCheckResult:
    """Both similarity matrices are square, symmetric, finite, with a unit diagonal."""
    return check_similarity_valid(similarity_matrix)


def check_similarity_valid(similarity_matrix: ClipArtifact) -> AssetCheckResult:
    """similarity_valid's result for one clip."""
    meta, problems = {}, []
    for name in ("sim_mean", "sim_temporal"):
        m = np.load(similarity_matrix.path(name), mmap_mode="r")
        square = m.ndim == 2 and m.shape[0] == m.shape[1]
        asym = float(np.max(np.abs(m - m.T))) if square else float("inf")
        diag = float(np.max(np.abs(np.diagonal(m) - 1.0))) if square else float("inf")
        finite = bool(np.isfinite(m).all())
        meta[f"{name}_shape"] = str(tuple(m.shape))
        meta[f"{name}_max_asymmetry"] = shown(asym)
        meta[f"{name}_max_diagonal_error"] = shown(diag)
        if not (square and finite and asym <= SYMMETRY_ATOL and diag <= DIAGONAL_ATOL):
            problems.append(f"{name}: square={square} finite={finite} asymmetry={asym:.2g} diagonal error={diag:.2g}")
    similarity_matrix.release()
    return AssetCheckResult(passed=not problems, description="; ".join(problems) or None, metadata=meta)


@asset_check(asset=lerobot_dataset, blocking=False)
@reports_failures
def dataset_consistent(context: AssetCheckExecutionContext, export: ExportResource) -> AssetCheckResult:
    """The dataset's files agree: index ranges, frame counts, timestamps, video ranges in their files, stats."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.export.lerobot import validate

    problems = validate(export.out)
    return AssetCheckResult(passed=not problems, description="; ".join(problems[:5]) or None,
                            metadata={"problems": MetadataValue.json(problems[:50]),
                                      "path": MetadataValue.path(export.out)})


@asset_check(asset=lerobot_dataset, blocking=False)
@reports_failures
def frames_match_rectified(context: AssetCheckExecutionContext, export: ExportResource,
                           store: StoreResource) -> AssetCheckResult:
    """Sampled episode frames equal the rectified clip's frames at those times (bit-exact without re-encode)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.export import verify_frames

    _, rows = store.store().query("SELECT clip_id, paths['rectified'] FROM clips")
    result = verify_frames(export.out, {k: v for k, v in rows if v}, samples=FRAME_SAMPLES)
    return AssetCheckResult(
        passed=result["checked"] > 0 and not result["mismatches"],
        description="; ".join(result["mismatches"][:5]) or None,
        metadata={"frames_checked": result["checked"], "mismatches": MetadataValue.json(result["mismatches"]),
                  "min_psnr_db": result["min_psnr"] if result["min_psnr"] is not None else "exact (stream copy)"},
    )


def load_trajectory(camera_trajectory: ClipArtifact):
    """The poses of a camera_trajectory artifact (egoclean.motion.trajectory.Trajectory); its download released."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.motion.trajectory import Trajectory

    try:
        return Trajectory.load_parquet(camera_trajectory.path("parquet"))
    finally:
        camera_trajectory.release()


@asset_check(asset=camera_trajectory, partitions_def=clip_partitions)
@reports_failures
def poses_valid(context: AssetCheckExecutionContext, camera_trajectory: ClipArtifact) -> AssetCheckResult:
    """Every tracked pose finite with an orthonormal rotation (det +1); untracked frames carry no pose."""
    return check_poses_valid(load_trajectory(camera_trajectory))


def check_poses_valid(traj) -> AssetCheckResult:
    """poses_valid's result for one clip's trajectory (also called per clip by batched Ray runs)."""
    from egoclean.motion.steps import pose_problems  # at use: numpy and the trajectory types

    problems = pose_problems(traj)
    return AssetCheckResult(passed=not problems, description="; ".join(problems) or None,
                            metadata={"problems": len(problems)})


@asset_check(asset=camera_trajectory, partitions_def=clip_partitions)
@reports_failures
def tracked_enough(context: AssetCheckExecutionContext, camera_trajectory: ClipArtifact) -> AssetCheckResult:
    """At least TRAJECTORY_MIN_TRACKED of the clip's frames have a pose."""
    camera_trajectory.release()  # the facts are in the manifest; no file needed
    return check_tracked_enough(camera_trajectory.info)


def check_tracked_enough(info: dict) -> AssetCheckResult:
    """tracked_enough's result for one clip's trajectory facts (its manifest's info; also called by Ray batches)."""
    fraction = float(info["tracked_fraction"])
    ok = fraction >= defaults.TRAJECTORY_MIN_TRACKED
    return AssetCheckResult(
        passed=ok,
        description=None if ok else (f"{fraction:.1%} of the frames tracked, below "
                                     f"{defaults.TRAJECTORY_MIN_TRACKED:.0%} (lost tracking: see the segments)"),
        metadata={"tracked_fraction": shown(fraction), "threshold": defaults.TRAJECTORY_MIN_TRACKED,
                  "segments": int(info["segments"])})


@asset_check(asset=camera_trajectory, partitions_def=clip_partitions, blocking=False)
@reports_failures
def head_motion_plausible(context: AssetCheckExecutionContext, camera_trajectory: ClipArtifact) -> AssetCheckResult:
    """No frame-to-frame step faster than a head moves (speed over metric segments, turn rate): warnings."""
    return check_head_motion_plausible(load_trajectory(camera_trajectory))


def check_head_motion_plausible(traj) -> AssetCheckResult:
    """head_motion_plausible's result for one clip's trajectory (also called per clip by batched Ray runs)."""
    from dagster import AssetCheckSeverity  # here: only this check warns rather than fails

    from egoclean.motion.steps import motion_rates  # at use: numpy and the trajectory types

    r = motion_rates(traj)
    found = []
    if r.too_fast:
        found.append(f"{r.too_fast} step(s) faster than {defaults.HEAD_MAX_SPEED_M_S:g} m/s "
                     f"(fastest {r.max_speed:.1f} m/s)")
    if r.too_fast_turns:
        found.append(f"{r.too_fast_turns} step(s) turning faster than {defaults.HEAD_MAX_ANGULAR_RATE_DEG_S:g} deg/s "
                     f"(fastest {r.max_angular_rate_deg:.0f} deg/s)")
    return AssetCheckResult(
        passed=not found, severity=AssetCheckSeverity.WARN, description="; ".join(found) or None,
        metadata={"max_speed_m_s": shown(r.max_speed) if r.max_speed is not None else "no metric segment",
                  "max_angular_rate_deg_s": shown(r.max_angular_rate_deg),
                  "speed_bound_m_s": defaults.HEAD_MAX_SPEED_M_S,
                  "angular_rate_bound_deg_s": defaults.HEAD_MAX_ANGULAR_RATE_DEG_S})


ALL_CHECKS = [matches_ground_truth, same_frame_count, embeddings_valid, similarity_valid, dataset_consistent,
              frames_match_rectified, poses_valid, tracked_enough, head_motion_plausible]
