"""The sensors: clip discovery (registers new clips and runs the graph for them) and the Ray job monitor.

The discovery sensor is off by default: turn it on in the UI (Automation) or with
`dagster sensor start clip_discovery_sensor -w workspace.yaml`. Each tick (every 10
minutes at most) scans up to DiscoveryResource.max_workers_per_tick workers after the
one its cursor names, adds at most max_new_partitions_per_tick clips, and requests one
clip_pipeline run per new clip (run_key = clip id, so a clip is never requested twice).

The Ray job monitor is on: with deploy/dagster.ray.yaml it fails, within one tick, a
STARTING or STARTED run whose Ray job has ended (Dagster's run monitoring only times a
STARTING run out), with the job's message; with any other launcher it does nothing.
"""


from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from egoclean_assets.discovery import SCOPE_HINT, discover
from egoclean_assets.failures import tick_failures
from egoclean_assets.jobs import clip_pipeline_job
from egoclean_assets.partitions import CLIPS, clip_partitions
from egoclean_assets.resources import DiscoveryResource, SourceResource, scope_from_env


@sensor(
    job=clip_pipeline_job,
    minimum_interval_seconds=600,
    default_status=DefaultSensorStatus.STOPPED,
    description="Lists the workers in the discovery scope, adds their new clips as partitions "
    "and requests a clip_pipeline run for each (bounded per tick, resumes from its cursor). "
    f"Scope when loaded: {', '.join(scope_from_env())}; {SCOPE_HINT}.",
)
def clip_discovery_sensor(
    context: SensorEvaluationContext, source: SourceResource, discovery: DiscoveryResource
) -> SensorResult:
    existing = set(context.instance.get_dynamic_partitions(CLIPS))
    with tick_failures():
        result = discover(source.open(), discovery, existing, context.cursor)
    if result.failed:
        context.log.warning(result.failed_summary())
    if not result.new_keys:
        return SensorResult(
            skip_reason=f"no new clips in {len(result.scanned)} scanned of {result.workers_in_scope} "
            f"worker(s) in {result.scope_note()}" + (f"; {result.failed_summary()}" if result.failed else ""),
            cursor=result.cursor,
        )
    return SensorResult(
        run_requests=[RunRequest(run_key=k, partition_key=k) for k in result.new_keys],
        dynamic_partitions_requests=[clip_partitions.build_add_request(result.new_keys)],
        cursor=result.cursor,
    )


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="With deploy/dagster.ray.yaml (runs as Ray jobs): fails a STARTING or STARTED run whose Ray job "
    "has ended (failed, stopped, or succeeded with the run unfinished), with the job's message. Elsewhere it "
    "does nothing.",
)
def ray_job_monitor_sensor(context: SensorEvaluationContext) -> SkipReason:
    launcher = context.instance.run_launcher
    # duck-typed: naming EgoCleanRayRunLauncher would import dagster_ray (the optional cluster extra)
    if not hasattr(launcher, "fail_runs_whose_job_ended"):
        return SkipReason("this instance does not launch runs as Ray jobs")
    failed = launcher.fail_runs_whose_job_ended()
    return SkipReason(f"failed {len(failed)} run(s) whose Ray job ended: {', '.join(failed)}"
                      if failed else "no STARTING or STARTED run has an ended Ray job")
