"""The temporal steps of one clip: similarity analysis (`analyse_clip`), anomaly spans (`segment`), pictures (`draw`).

Each returns a typed result with every fact the orchestration records; the Dagster assets
(egoclean_assets.assets.temporal) and the Ray analysis task (egoclean.cluster.ray_pipeline)
call the same functions. See egoclean.ingest.steps.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from egoclean.core.timecode import mmss


def span_dicts(spans: Sequence[Any]) -> list[dict]:
    """Spans as the manifests keep them: start/end in seconds and as mm:ss, peak score."""
    return [{"start_sec": s.start_sec, "end_sec": s.end_sec, "start": mmss(s.start_sec), "end": mmss(s.end_sec),
             "peak_score": s.peak_score} for s in spans]


@dataclass(frozen=True)
class Analysed:
    """The clip's similarity analysis saved (`files`), with its facts."""

    files: dict[str, str]
    period_sec: float | None
    step_sec: float
    windows: int
    matrix_size: int
    subsampled: bool  # the matrices were drawn on a subsample of the windows
    mean_change: float | None  # None: fewer than two windows, no change signal
    seconds: float

    def info(self) -> dict:
        return {"period_sec": self.period_sec, "step_sec": self.step_sec, "windows": self.windows,
                "matrix_size": self.matrix_size}

    def moved(self, files: dict[str, str]) -> "Analysed":
        return replace(self, files=dict(files))


def analyse_clip(embeddings_prefix: str | os.PathLike, out_prefix: str | os.PathLike) -> Analysed:
    """Cosine self-similarity (mean and temporal tokens), change signal, autocorrelation and period of
    the embeddings at `embeddings_prefix`, saved at `out_prefix`."""
    import numpy as np

    from egoclean.embed.embeddings import Embeddings
    from egoclean.temporal.analysis import analyse

    t0 = time.perf_counter()
    an = analyse(Embeddings.load(embeddings_prefix, mmap=True), matrices=True)
    seconds = time.perf_counter() - t0
    files = an.save(out_prefix)
    return Analysed(files={k: str(v) for k, v in files.items()}, period_sec=an.period_sec,
                    step_sec=float(an.step_sec), windows=int(len(an.ts)), matrix_size=int(an.sim_mean.shape[0]),
                    subsampled=bool(an.matrices_subsampled),
                    mean_change=float(np.mean(an.change)) if len(an.change) else None, seconds=seconds)


@dataclass(frozen=True)
class Segmented:
    """The clip's anomalous (and work) spans: the detection, the segments document's facts, where it is written."""

    clip_id: str
    detection: Any  # egoclean.temporal.detection.Detection
    params: dict  # DetectionParams.to_dict()
    model: str
    random_weights: bool
    duration_sec: float
    seconds: float
    json: str | None = None  # the segments JSON, once written

    @property
    def files(self) -> dict[str, str]:
        return {"json": self.json} if self.json else {}

    @property
    def spans(self) -> list[dict]:
        return span_dicts(self.detection.spans)

    def info(self) -> dict:
        return {"spans": self.spans, "duration_sec": self.duration_sec, "model": self.model,
                "random_weights": self.random_weights}

    def document(self) -> dict:
        """The segments JSON (egoclean.temporal.segments.segments_document)."""
        from egoclean.temporal.segments import segments_document

        return segments_document(self.clip_id, self.detection, self.model, self.random_weights, self.duration_sec)

    def write(self, path: str | os.PathLike) -> None:
        """Write the document at `path` as it is (callers give it its final name: see the asset and the Ray task)."""
        with open(path, "w") as f:
            f.write(json.dumps(self.document(), indent=2) + "\n")

    def at(self, path: str | os.PathLike) -> "Segmented":
        """The same result, its JSON at `path`."""
        return replace(self, json=str(path))

    def moved(self, files: dict[str, str]) -> "Segmented":
        return self.at(files["json"])


def segment(clip_id: str, embeddings_prefix: str | os.PathLike, params, model: str, random_weights: bool,
            duration_sec: float) -> Segmented:
    """Detect `clip_id`'s spans from the temporal-token typicality of its embeddings (`params`: DetectionParams).

    Writes nothing: the caller writes `document()` and the store's rows in the order it needs."""
    from egoclean.embed.embeddings import Embeddings
    from egoclean.temporal.detection import detect

    t0 = time.perf_counter()
    det = detect(Embeddings.load(embeddings_prefix, mmap=True), params)
    return Segmented(clip_id=clip_id, detection=det, params=params.to_dict(), model=model,
                     random_weights=bool(random_weights), duration_sec=float(duration_sec),
                     seconds=time.perf_counter() - t0)


@dataclass(frozen=True)
class Drawn:
    """The clip's two pictures (diagnostics, detection) and what the detection picture shows of the ground truth."""

    diagnostics: str
    detection: str
    ground_truth: str  # the verdict's summary, or why the ground truth was not drawn
    truth_drawn: int  # ground-truth spans drawn

    @property
    def files(self) -> dict[str, str]:
        return {"diagnostics": self.diagnostics, "detection": self.detection}

    def info(self) -> dict:
        return {}

    def moved(self, files: dict[str, str]) -> "Drawn":
        return replace(self, diagnostics=files["diagnostics"], detection=files["detection"])


def draw(clip_id: str, analysis_prefix: str | os.PathLike, segments_json: str | os.PathLike, truth: Sequence[Any],
         layout) -> Drawn:
    """The diagnostics picture (change, both similarity matrices, autocorrelation) and the detection picture
    (with the ground-truth spans `truth` when the verdict judges them) into `layout` (a ClipLayout)."""
    from pathlib import Path

    from egoclean.temporal.analysis import Analysis
    from egoclean.temporal.detection import Detection
    from egoclean.temporal.ground_truth import judge
    from egoclean.temporal.plots import plot_detection, plot_diagnostics
    from egoclean.temporal.segments import figure_title

    doc = json.loads(Path(segments_json).read_text())
    title = figure_title(clip_id, doc)
    diag = plot_diagnostics(Analysis.load(analysis_prefix), layout.diagnostics_plot, title)
    det = Detection.from_dict(doc)
    # the spans the check judges against, drawn only when it judges them
    verdict = judge(clip_id, det.spans, list(truth), doc["duration_sec"])
    detp = plot_detection(det, layout.detection_plot, title, truth=verdict.truth if verdict.judged else None)
    return Drawn(diagnostics=str(diag), detection=str(detp),
                 ground_truth=verdict.summary() if verdict.judged else f"not drawn: {verdict.reason}",
                 truth_drawn=len(verdict.truth) if verdict.judged else 0)
