"""Ray mode (`EGOCLEAN_EXECUTION=ray`) of the clip graph, in three parts; callers import them from here.

- `batch`: `clip_batch`, the multi-asset that materializes the nine clip assets of K clips
  per run on Ray (`ray_graph`: Ray mode's assets, checks and extra resource), recording each
  clip through the local assets' metadata functions as it finishes;
- `resource`: `RayClusterResource` (the EGOCLEAN_RAY_* settings, as egoclean.settings reads them);
- `batching`: command-line backfills as contiguous ranges of at most K clips, one run each.
"""

from egoclean_assets.cluster.batch import CLIP_ASSETS, build_clip_batch, ray_graph
from egoclean_assets.cluster.batching import contiguous_batches, run_batches
from egoclean_assets.cluster.resource import RayClusterResource, ray_resource_from_env

__all__ = ["CLIP_ASSETS", "RayClusterResource", "build_clip_batch", "contiguous_batches", "ray_graph",
           "ray_resource_from_env", "run_batches"]
