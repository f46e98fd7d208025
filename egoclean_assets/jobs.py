"""Jobs: the whole per-clip graph (with its checks), and a one-off clip discovery."""


from dagster import AssetSelection, Nothing, OpExecutionContext, Out, define_asset_job, in_process_executor, job, op

from egoclean_assets.assets.export import training_episodes
from egoclean_assets.assets.ingest import GROUP as INGEST
from egoclean_assets.assets.motion import GROUP as MOTION
from egoclean_assets.assets.temporal import GROUP as TEMPORAL
from egoclean_assets.discovery import discover
from egoclean_assets.failures import reports_failures
from egoclean_assets.partitions import CLIPS, clip_partitions
from egoclean_assets.resources import DiscoveryResource, SourceResource

CLIP_PIPELINE = "clip_pipeline"

clip_pipeline_job = define_asset_job(
    CLIP_PIPELINE,
    selection=AssetSelection.groups(INGEST, TEMPORAL, MOTION) | AssetSelection.assets(training_episodes),
    partitions_def=clip_partitions,
    # One process runs all of a clip's steps: the multiprocess default started a fresh
    # Python per step, each importing torch again (67-120 s of a UI run vs ~10 s of work;
    # docs/PERFORMANCE.md, run overhead). Pools still hold: the in-process executor claims
    # the `gpu` / `duckdb` slots per step like any other.
    executor_def=in_process_executor,
    description="Every asset of one clip partition, raw_tar to training_episodes (camera_trajectory included), "
                "with their checks.",
)

EXPORT_DATASET = "export_dataset"

export_dataset_job = define_asset_job(
    EXPORT_DATASET,
    selection=AssetSelection.assets("lerobot_dataset"),
    executor_def=in_process_executor,  # one step and its two checks: no step process each
    description="Assemble (or extend) the LeRobot v3.0 dataset from every materialized clip, with its checks.",
)


@op(out=Out(Nothing))
@reports_failures
def register_clips_in_scope(context: OpExecutionContext, source: SourceResource, discovery: DiscoveryResource):
    """Register every clip of the workers in the discovery scope as a `clips` partition."""
    existing = set(context.instance.get_dynamic_partitions(CLIPS))
    result = discover(source.open(), discovery, existing, cursor=None, whole_scope=True)
    if result.new_keys:
        context.instance.add_dynamic_partitions(CLIPS, result.new_keys)
    if result.failed:
        context.log.warning(result.failed_summary())
    context.log.info(
        f"scanned {len(result.scanned)} worker(s) ({', '.join(result.scanned) or 'none'}) in scope "
        f"{', '.join(result.scope)}; registered {len(result.new_keys)} new clip partition(s): "
        f"{', '.join(result.new_keys) or 'none'}"
    )
    if not result.new_keys:
        context.log.warning(f"no new clips in {result.scope_note()}")


# One op: the multiprocess default spent ~9 s of a 13 s run starting a step process for a
# 0.4 s listing (issue 18).
@job(description="Register the clips of the workers in scope as partitions (launch runs for them from the UI).",
     executor_def=in_process_executor)
def discover_clips_job():
    register_clips_in_scope()
