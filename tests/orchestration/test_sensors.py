"""The discovery sensor and job: new clips become partitions and runs, bounded per tick."""

import json

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context

from egoclean_assets.definitions import build_definitions
from egoclean_assets.discovery import discover, workers_in_scope
from egoclean_assets.partitions import CLIPS
from egoclean_assets.resources import DiscoveryResource, SourceResource
from egoclean_assets.sensors import clip_discovery_sensor


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    """Two factories x two workers x two short clean clips (only the tar indexes matter here)."""
    from egoclean.synth import SynthConfig, write_dataset

    out = tmp_path_factory.mktemp("sensor") / "source"
    write_dataset(out, SynthConfig(factories=2, workers=2, clips=2, duration_sec=2.5, width=64, height=48,
                                   anomalies=False))
    return out


def _resources(source_dir, **discovery):
    return {
        "source": SourceResource(url=str(source_dir), cache_dir=str(source_dir.parent / "index-cache")),
        "discovery": DiscoveryResource(**discovery),
    }


def tick(instance, resources, cursor):
    """Evaluate the sensor once and apply its partition requests, as the daemon would."""
    ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = clip_discovery_sensor(ctx)
    assert isinstance(result, SensorResult)
    for req in result.dynamic_partitions_requests or []:
        assert req.partitions_def_name == CLIPS
        instance.add_dynamic_partitions(CLIPS, list(req.partition_keys))
    return result


def test_sensor_adds_partitions_requests_runs_and_second_tick_adds_nothing(source_dir):
    instance = DagsterInstance.ephemeral()
    res = _resources(source_dir)  # default scope: factory_001/worker_001
    first = tick(instance, res, None)
    keys = ["factory001_worker001_00000", "factory001_worker001_00001"]
    assert sorted(instance.get_dynamic_partitions(CLIPS)) == keys
    assert sorted(r.partition_key for r in first.run_requests) == keys
    assert all(r.run_key == r.partition_key for r in first.run_requests)
    second = tick(instance, res, first.cursor)
    assert not second.run_requests and not second.dynamic_partitions_requests
    assert "no new clips" in str(second.skip_reason)
    assert sorted(instance.get_dynamic_partitions(CLIPS)) == keys


def test_scope_patterns_and_bounded_ticks_resume_from_the_cursor(source_dir):
    instance = DagsterInstance.ephemeral()
    res = _resources(source_dir, scope=["factory_00*/*"], max_workers_per_tick=1, max_new_partitions_per_tick=3)
    cursor, added = None, []
    for _ in range(4):  # four workers, one per tick
        result = tick(instance, res, cursor)
        added.append(sorted(r.partition_key for r in result.run_requests))
        cursor = result.cursor
    assert added == [
        [f"factory{f:03d}_worker{w:03d}_{i:05d}" for i in range(2)] for f in (1, 2) for w in (1, 2)
    ]
    assert len(instance.get_dynamic_partitions(CLIPS)) == 8
    # a fifth tick wraps around to the first worker and finds nothing new
    assert not tick(instance, res, cursor).run_requests


def test_partition_budget_cuts_a_worker_short_and_the_next_tick_finishes_it(source_dir):
    src = SourceResource(url=str(source_dir), cache_dir=str(source_dir.parent / "index-cache")).open()
    settings = DiscoveryResource(scope=["factory_002/worker_00[12]"], max_workers_per_tick=5,
                                 max_new_partitions_per_tick=1)
    first = discover(src, settings, set(), None)
    assert first.new_keys == ["factory002_worker001_00000"]
    assert first.cursor is None  # worker_001 is not finished
    second = discover(src, settings, set(first.new_keys), first.cursor)
    assert second.new_keys == ["factory002_worker001_00001"]
    third = discover(src, settings, set(first.new_keys + second.new_keys), second.cursor)
    assert third.new_keys == ["factory002_worker002_00000"]
    assert json.loads(second.cursor) == {"after": "factory_002/worker_001"}


def test_workers_in_scope_matches_fnmatch_patterns(source_dir):
    src = SourceResource(url=str(source_dir), cache_dir=str(source_dir.parent / "index-cache")).open()
    assert workers_in_scope(src, ["factory_001/worker_001"]) == ["factory_001/worker_001"]
    assert workers_in_scope(src, ["factory_*/worker_002"]) == ["factory_001/worker_002", "factory_002/worker_002"]
    assert workers_in_scope(src, ["factory_00[2]/*", "factory_001/worker_001"]) == [
        "factory_001/worker_001", "factory_002/worker_001", "factory_002/worker_002"]


def test_discovery_job_registers_the_whole_scope(source_dir):
    instance = DagsterInstance.ephemeral()
    defs = build_definitions(_resources(source_dir, scope=["factory_002/*"]))
    result = defs.resolve_job_def("discover_clips_job").execute_in_process(instance=instance)
    assert result.success
    assert sorted(instance.get_dynamic_partitions(CLIPS)) == [
        f"factory002_worker{w:03d}_{i:05d}" for w in (1, 2) for i in range(2)
    ]


def test_nothing_new_says_which_scope_was_scanned_and_how_to_widen_it(source_dir):
    instance = DagsterInstance.ephemeral()
    res = _resources(source_dir)  # default scope: factory_001/worker_001 of 2 x 2 workers
    first = tick(instance, res, None)
    second = tick(instance, res, first.cursor)
    reason = str(second.skip_reason)
    assert "scope factory_001/worker_001" in reason and "EGOCLEAN_SCOPE" in reason and "'*/*'" in reason

    job = build_definitions(res).resolve_job_def("discover_clips_job").execute_in_process(instance=instance)
    logs = [e.user_message for e in instance.all_logs(job.run_id)]
    assert any("in scope factory_001/worker_001; registered 0 new" in m for m in logs)
    assert any(m.startswith("no new clips in scope factory_001/worker_001;") and "EGOCLEAN_SCOPE" in m for m in logs)


def test_sensor_page_names_the_scope_it_was_loaded_with(monkeypatch):
    import importlib

    import egoclean_assets.sensors as sensors

    monkeypatch.setenv("EGOCLEAN_SCOPE", "factory_007/*")
    try:
        desc = importlib.reload(sensors).clip_discovery_sensor.description
        assert "Scope when loaded: factory_007/*" in desc and "EGOCLEAN_SCOPE" in desc
    finally:
        monkeypatch.undo()
        importlib.reload(sensors)


def test_demo_scope_covers_every_worker_of_its_source(source_dir):
    """The demo writes EGOCLEAN_SCOPE into demo.env, so a worker added to its source is discovered."""
    from egoclean_assets.demo import DEMO_SCOPE
    from egoclean_assets.resources import build_resources

    discovery = build_resources({"EGOCLEAN_SCOPE": DEMO_SCOPE})["discovery"]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(CLIPS, ["factory001_worker001_00000", "factory001_worker001_00001"])
    res = {"source": _resources(source_dir)["source"], "discovery": discovery}
    result = build_definitions(res).resolve_job_def("discover_clips_job").execute_in_process(instance=instance)
    assert result.success
    assert len(instance.get_dynamic_partitions(CLIPS)) == 8  # 2 factories x 2 workers x 2 clips


def test_a_failed_tick_shows_egocleans_one_line_first(tmp_path):
    """What the code server returns for a tick whose source cannot be read: EgoClean's line first,
    not Dagster's "Error occurred during the execution of evaluation_fn" (issue 18)."""
    from dagster._grpc.impl import get_external_sensor_execution

    missing = tmp_path / "no-such-source"
    defs = build_definitions(_resources(missing, scope=["*/*"]))
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        snap = get_external_sensor_execution(
            defs.get_repository_def(), None, instance.get_ref(), "clip_discovery_sensor", None, None, None, None,
            None)
    first = snap.error.message.splitlines()[0]
    assert first.startswith("egoclean_assets.failures.TickFailure: NotFoundError: ") and str(missing) in first, \
        snap.error.to_string()
    assert snap.error.cause is not None and snap.error.cause.cls_name == "NotFoundError"  # the traceback, expandable
