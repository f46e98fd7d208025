"""One clip's detection end to end: the segments document, the pictures, the verdict, the report.

Above the algorithm (egoclean.temporal.detection, which only turns scores into spans): this is the
orchestration shared by `egoclean detect` and the `anomaly_segments` asset. Both write the
same JSON (`segments_document`: the clip, the model, the duration and
`Detection.to_dict(series=True)`), so `Detection.from_dict` reads either; the command line
adds the ground-truth verdict under "evaluation" when it judged one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from egoclean.core import atomic
from egoclean.temporal.detection import Detection, DetectionParams, detect
from egoclean.embed.embeddings import Embeddings
from egoclean.embed.steps import model_label
from egoclean.temporal.ground_truth import GroundTruth, Verdict, judge
from egoclean.core.layout import ClipLayout
from egoclean.core.timecode import mmss


def figure_title(clip_id: str, meta: dict) -> str:
    """`<clip> - <model>`, with "(random weights)" when the embeddings say so."""
    return f"{clip_id} - {model_label(meta.get('model') or 'unknown model', bool(meta.get('random_weights')))}"


def clip_duration(meta: dict) -> float | None:
    """The clip's duration from embedding metadata (frames / fps), None when not recorded."""
    try:
        n, fps = float(meta["n_frames"]), float(meta["fps"])
    except (KeyError, TypeError, ValueError):
        return None
    return n / fps if fps > 0 and math.isfinite(n / fps) else None


def segments_document(clip_id: str, det: Detection, model: str | None, random_weights: bool,
                      duration_sec: float | None) -> dict:
    """The segments JSON of a clip: what the asset and the command line both write."""
    return {"clip_id": clip_id, "model": model, "random_weights": bool(random_weights),
            "duration_sec": duration_sec} | det.to_dict(series=True)


def report_lines(title: str, det: Detection, verdict: Verdict | None) -> list[str]:
    """The human report of a clip's detection and, when given, its ground-truth verdict."""
    lines = [f"{title}: {len(det.ts)} windows, {len(det.spans)} anomalous span(s)"]
    lines.append(
        f"  theta_on={det.theta_on:.5f} theta_off={det.theta_off:.5f} median={det.median:.5f}"
        + (f" separation={det.separation:.2f}" if det.separation is not None and math.isfinite(det.separation) else "")
        + (" (suppressed by the separation guard)" if det.suppressed else "")
    )
    for i, s in enumerate(det.spans, 1):
        lines.append(f"  span {i}: {mmss(s.start_sec)}-{mmss(s.end_sec)} "
                     f"({s.duration_sec:.1f} s, peak {s.peak_score:.5f})")
    if verdict is not None:
        if not verdict.truth:
            # nothing to judge: P/R/F1 against no rows would only look like a failure
            lines.append(f"  ground truth: no rows for clip {verdict.clip_id!r} (matched by the prefix's file name)")
        elif not verdict.judged:
            lines.append(f"  ground truth: {verdict.reason}")
        else:
            lines.extend("  " + ln for ln in verdict.evaluation.report_lines())
    return lines


def detect_clip(
    prefix: str | os.PathLike,
    out_json: str | os.PathLike | None = None,
    plots_dir: str | os.PathLike | None = None,
    ground_truth: GroundTruth | str | os.PathLike | None = None,
    params: DetectionParams | None = None,
    max_matrix: int | None = None,
) -> str:
    """Detect spans in the embeddings at `prefix`; write JSON / pictures; return a report.

    `ground_truth`: a GroundTruth, or one CSV (the only source); the clip is the prefix's
    file name, judged by egoclean.temporal.ground_truth.judge like the asset check.
    """
    from egoclean.temporal import analysis, plots  # imported at use: matplotlib only when pictures are asked for

    prefix = Path(prefix)
    clip_id = prefix.name
    emb = Embeddings.load(prefix, mmap=True)  # temb streams from disk in chunks
    det = detect(emb, params or DetectionParams())
    meta: dict[str, Any] = emb.meta or {}
    duration = clip_duration(meta)

    verdict = None
    if ground_truth is not None:
        gt = ground_truth if isinstance(ground_truth, GroundTruth) else GroundTruth.load(False, [ground_truth])
        verdict = judge(clip_id, det.spans, gt.spans(clip_id), duration)

    title = figure_title(clip_id, meta)
    written = []
    if plots_dir is not None:
        out = ClipLayout(clip_id, str(plots_dir))
        an = analysis.analyse(emb, matrices=True, max_matrix=max_matrix or analysis.DEFAULT_MAX_MATRIX)
        written.append(plots.plot_diagnostics(an, out.diagnostics_plot, title))
        truth = verdict.truth if verdict is not None and verdict.judged else None
        written.append(plots.plot_detection(det, out.detection_plot, title, truth=truth))

    if out_json is not None:
        doc = segments_document(clip_id, det, meta.get("model"), bool(meta.get("random_weights", False)), duration)
        if verdict is not None and verdict.evaluation is not None:
            doc["evaluation"] = verdict.evaluation.to_dict()
        atomic.write_json(out_json, doc)
        written.append(Path(out_json))

    lines = report_lines(title, det, verdict)
    lines.extend(f"  wrote {p}" for p in written)
    return "\n".join(lines)
