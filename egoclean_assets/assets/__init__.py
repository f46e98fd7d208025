"""The assets, by phase: `ingest` (phase 1), `temporal` (phase 2), `motion` and `export` (phase 3: training data)."""

from egoclean_assets.assets.export import lerobot_dataset, training_episodes
from egoclean_assets.assets.ingest import intrinsics, raw_tar, rectified_clip
from egoclean_assets.assets.motion import camera_trajectory, trajectory_plot
from egoclean_assets.assets.temporal import anomaly_segments, diagnostics_plot, similarity_matrix, vjepa_embeddings

ALL_ASSETS = [
    raw_tar, intrinsics, rectified_clip, vjepa_embeddings, similarity_matrix, anomaly_segments, diagnostics_plot,
    camera_trajectory, trajectory_plot, training_episodes, lerobot_dataset,
]
