"""The clip assets, by phase: `ingest` (phase 1) and `temporal` (phase 2)."""

from egoclean_assets.assets.ingest import intrinsics, raw_tar, rectified_clip
from egoclean_assets.assets.temporal import anomaly_segments, diagnostics_plot, similarity_matrix, vjepa_embeddings

ALL_ASSETS = [
    raw_tar, intrinsics, rectified_clip, vjepa_embeddings, similarity_matrix, anomaly_segments, diagnostics_plot
]
