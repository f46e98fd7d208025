"""`defs`: the EgoClean Dagster definitions (loaded by workspace.yaml / `dagster dev`)."""

from __future__ import annotations

from dagster import Definitions

from egoclean_assets.assets import ALL_ASSETS
from egoclean_assets.checks import ALL_CHECKS
from egoclean.settings import Settings
from egoclean_assets.cluster import ray_graph
from egoclean_assets.jobs import clip_pipeline_job, discover_clips_job, export_dataset_job
from egoclean_assets.resources import build_resources
from egoclean_assets.sensors import clip_discovery_sensor, ray_job_monitor_sensor


def build_definitions(resources: dict | None = None) -> Definitions:
    """The definitions with `resources` overriding the environment-derived ones.

    EGOCLEAN_EXECUTION=ray swaps the per-clip assets for the batched Ray step (same keys,
    lineage and checks; see egoclean_assets.cluster); the default is the local graph."""
    assets, checks, extra = ALL_ASSETS, ALL_CHECKS, {}
    if Settings.from_env().execution == "ray":
        assets, checks, extra = ray_graph()
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[clip_pipeline_job, discover_clips_job, export_dataset_job],
        sensors=[clip_discovery_sensor, ray_job_monitor_sensor],
        resources=build_resources() | extra | (resources or {}),
    )


defs = build_definitions()
