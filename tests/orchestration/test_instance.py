"""EgoClean's instance class: a range run's creation reads the clips once at most and records what Dagster's does.

Both instances are real SQLite instances (dagster_home/dagster.yaml, which names
`egoclean_assets.instance_storage.EgoCleanInstance`, and the same file without that line); the
run is a Ray-mode range run of the clip assets (K = 4) created from workspace.yaml's code
location as the backfill CLI creates it (`egoclean_assets.launch._create_run`), with
Dagster's default planned events and with the `subset` switch of deploy/ray.env.
"""

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from egoclean_assets.instance_storage import EgoCleanInstance

ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"factory001_worker001_{i:05d}" for i in range(1, 41)]
RANGE = KEYS[8:12]


def _home(tmp_path: Path, name: str, own_class: bool) -> Path:
    home = tmp_path / name
    home.mkdir()
    text = (ROOT / "dagster_home" / "dagster.yaml").read_text()
    if not own_class:
        line = "instance_class:\n  module: egoclean_assets.instance_storage\n  class: EgoCleanInstance\n"
        text = text.replace(line, "")
        assert "instance_class" not in text
    (home / "dagster.yaml").write_text(text)
    return home


def _planned(instance, run_id: str) -> list[tuple]:
    """(event type, asset, check, partition keys) of the run's planned materializations and checks."""
    out = []
    for kind in (DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED):
        for rec in instance.get_event_records(EventRecordsFilter(kind), limit=10_000):
            if rec.run_id != run_id:
                continue
            data = rec.event_log_entry.dagster_event.event_specific_data
            subset = data.partitions_subset
            keys = sorted(subset.get_partition_keys()) if subset is not None else [getattr(data, "partition", None)]
            out.append((kind.value, data.asset_key.to_user_string(), getattr(data, "check_name", None), tuple(keys)))
    return sorted(out)


@pytest.mark.parametrize("subset", [False, True], ids=["per-partition", "subset"])
def test_a_range_run_reads_the_clips_once_and_plans_the_same_events(tmp_path, monkeypatch, subset):
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from egoclean_assets.backfill import QUIET
    from egoclean_assets.cluster import CLIP_ASSETS
    from egoclean_assets.launch import LOCATION, REPOSITORY, WORKSPACE, _create_run
    from egoclean_assets.partitions import add_clip_partitions

    monkeypatch.setenv("EGOCLEAN_EXECUTION", "ray")
    monkeypatch.setenv("EGOCLEAN_CLIPS_PER_RUN", "4")
    if subset:
        monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    else:
        monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    reads = []
    original = SqlEventLogStorage.get_dynamic_partitions
    monkeypatch.setattr(SqlEventLogStorage, "get_dynamic_partitions",
                        lambda self, name: reads.append(name) or original(self, name))
    found = {}
    for name, own_class in (("egoclean", True), ("dagster", False)):
        with DagsterInstance.from_config(str(_home(tmp_path, name, own_class))) as instance:
            assert isinstance(instance, EgoCleanInstance) == own_class
            add_clip_partitions(instance, KEYS)
            with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as process:
                location = process.create_request_context().get_code_location(LOCATION)
                repo = location.get_repository(REPOSITORY)
                job = location.get_job(JobSubsetSelector(
                    location_name=LOCATION, repository_name=REPOSITORY, job_name="clip_pipeline",
                    op_selection=None, asset_selection=[AssetKey(a) for a in CLIP_ASSETS]))

                def create(first, last, instance=instance, location=location, repo=repo, job=job):
                    reads.clear()
                    run = _create_run(instance, location, repo, job, QUIET,
                                      {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
                    return len(reads), run

                count, run = create(RANGE[0], RANGE[-1])
                found[name] = (count, _planned(instance, run.run_id))
                if own_class:
                    # the next run reads nothing while the clips are unchanged; a clip added is read
                    assert create(KEYS[0], KEYS[3])[0] == 0
                    add_clip_partitions(instance, ["factory001_worker001_00041"])
                    count, run = create(KEYS[-1], "factory001_worker001_00041")
                    assert count == 1
                    assert {p[3] for p in _planned(instance, run.run_id)} >= {(KEYS[-1], "factory001_worker001_00041")}
            # outside a run's creation, the keys are read from the storage every time (a clip added is seen)
            reads.clear()
            instance.get_dynamic_partitions("clips")
            instance.get_dynamic_partitions("clips")
            assert len(reads) == 2
    (ours, planned), (dagsters, dagster_planned) = found["egoclean"], found["dagster"]
    assert ours == 1 and dagsters > 5, (ours, dagsters)  # Dagster's: once per asset and check of the run
    assert planned == dagster_planned
    assert {p[1] for p in planned} == set(CLIP_ASSETS)
    materializations = {p[3] for p in planned if p[0] == DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value}
    checks = {p[3] for p in planned if p[0] == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value}
    assert materializations == ({tuple(RANGE)} if subset else {(k,) for k in RANGE})
    assert checks == {tuple(RANGE)}  # a check's planned event carries the run's range either way
