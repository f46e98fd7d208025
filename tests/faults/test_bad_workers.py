"""One bad worker (an empty or damaged shard) is reported and skipped; discovery of the rest proceeds.

Through the library (`discover`), the sensor, the discovery job and the backfill CLI, on
a real synthetic dataset whose worker_002 shard is empty and worker_003 shard is not a tar.
"""

import json
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_sensor_context

from egoclean_assets import backfill
from egoclean_assets.definitions import build_definitions
from egoclean_assets.discovery import discover
from egoclean_assets.partitions import CLIPS
from egoclean_assets.resources import DiscoveryResource, SourceResource
from egoclean_assets.sensors import clip_discovery_sensor

ROOT = Path(__file__).resolve().parents[2]
GOOD = ["factory001_worker001_00000", "factory001_worker001_00001",
        "factory001_worker004_00000", "factory001_worker004_00001"]


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    from egoclean.synth import SynthConfig, write_dataset

    out = tmp_path_factory.mktemp("badworkers") / "source"
    write_dataset(out, SynthConfig(workers=4, clips=2, duration_sec=2.5, width=64, height=48, anomalies=False))
    w = out / "factory_001" / "workers"
    (w / "worker_002" / "factory001_worker002_part00.tar").write_bytes(b"")  # empty shard
    (w / "worker_003" / "factory001_worker003_part00.tar").write_bytes(b"\x17" * 3000)  # not a tar
    return out


def _resources(source_dir, tmp_path, **discovery):
    return {"source": SourceResource(url=str(source_dir), cache_dir=str(tmp_path / "cache"), retries=0),
            "discovery": DiscoveryResource(**discovery)}


def test_discover_skips_bad_workers_and_names_them(source_dir, tmp_path):
    res = _resources(source_dir, tmp_path, scope=["factory_001/*"])
    result = discover(res["source"].open(), res["discovery"], set(), None, whole_scope=True)
    assert result.new_keys == GOOD
    assert [w for w, _ in result.failed] == ["factory_001/worker_002", "factory_001/worker_003"]
    assert all("factory001_worker00" in why and "part00.tar" in why for _, why in result.failed)
    assert json.loads(result.cursor) == {"after": "factory_001/worker_004"}


def test_sensor_tick_proceeds_past_a_bad_worker_and_its_cursor_moves(source_dir, tmp_path):
    instance = DagsterInstance.ephemeral()
    res = _resources(source_dir, tmp_path, scope=["factory_001/*"], max_workers_per_tick=2)
    seen, cursor, reasons = [], None, []
    for _ in range(3):  # two workers per tick: (1, 2), (3, 4), (1, 2)
        result = clip_discovery_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=res))
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(CLIPS, list(req.partition_keys))
        seen += [r.partition_key for r in result.run_requests]
        reasons.append(str(result.skip_reason or ""))
        assert result.cursor != cursor
        cursor = result.cursor
    assert sorted(seen) == GOOD
    # The third tick finds nothing new; its skip reason names the bad worker it skipped.
    assert "factory_001/worker_002" in reasons[2] and "skipped" in reasons[2]


def test_discovery_job_registers_the_healthy_workers_and_warns(source_dir, tmp_path):
    instance = DagsterInstance.ephemeral()
    defs = build_definitions(_resources(source_dir, tmp_path, scope=["factory_001/*"]))
    run = defs.resolve_job_def("discover_clips_job").execute_in_process(instance=instance)
    assert run.success
    assert sorted(instance.get_dynamic_partitions(CLIPS)) == GOOD
    logs = [e.user_message for e in instance.all_logs(run.run_id)]
    assert any("skipped" in m and "factory_001/worker_003" in m for m in logs), logs


def test_backfill_registers_the_healthy_workers_and_reports_the_bad_ones(source_dir, tmp_path, monkeypatch, capsys):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EGOCLEAN_CACHE", str(tmp_path / "cache"))
    rc = backfill.main(["factory_001/*", "--source", str(source_dir), "--register-only"])
    out = capsys.readouterr()
    assert rc == 1  # the healthy workers were registered, but not everything in scope was
    assert "4 clip(s), 4 newly registered" in out.out
    assert "factory_001/worker_002" in out.err and "factory_001/worker_003" in out.err
    with DagsterInstance.get() as inst:
        assert sorted(inst.get_dynamic_partitions(CLIPS)) == GOOD


def test_a_missing_factory_or_worker_in_the_scope_is_named_and_the_rest_discovered(source_dir, tmp_path):
    """`factory_009/*` and `factory_001/worker_009` are reported; the sensor tick does not raise."""
    scope = ["factory_009/*", "factory_001/worker_009", "factory_001/worker_001", "factory_001/worker_004"]
    res = _resources(source_dir, tmp_path, scope=scope)
    result = discover(res["source"].open(), res["discovery"], set(), None, whole_scope=True)
    assert result.new_keys == GOOD
    why = dict(result.failed)
    assert why["factory_009"].startswith("factory factory_009 not found in ") and "factories: factory_001" in why[
        "factory_009"]
    assert why["factory_001/worker_009"].startswith("worker worker_009 not found in factory_001 of ")
    instance = DagsterInstance.ephemeral()
    tick = clip_discovery_sensor(build_sensor_context(instance=instance, cursor=None, resources=res))
    assert sorted(r.partition_key for r in tick.run_requests) == GOOD


def test_a_damaged_sensor_cursor_restarts_from_the_first_worker(source_dir, tmp_path):
    res = _resources(source_dir, tmp_path, scope=["factory_001/worker_001"])
    for damaged in ("{not json", '{"after": 5}', "[1, 2]", '"text"'):
        instance = DagsterInstance.ephemeral()
        tick = clip_discovery_sensor(build_sensor_context(instance=instance, cursor=damaged, resources=res))
        assert sorted(r.partition_key for r in tick.run_requests) == GOOD[:2], damaged
        assert json.loads(tick.cursor) == {"after": "factory_001/worker_001"}


def test_a_worker_with_one_damaged_shard_registers_its_readable_clips(tmp_path):
    """Worker 1 has two shards and the second is damaged: the first shard's clips are registered, the shard named."""
    from tests.support.hubstub import make_worker

    root = tmp_path / "source"
    make_worker(root, 1, 1, shards=(2, 2))
    (root / "factory_001/workers/worker_001/factory001_worker001_part01.tar").write_bytes(b"\x17" * 3000)
    res = _resources(root, tmp_path, scope=["factory_001/*"])
    result = discover(res["source"].open(), res["discovery"], set(), None, whole_scope=True)
    assert result.new_keys == ["factory001_worker001_00000", "factory001_worker001_00001"]
    assert [(w, "part01.tar: not a tar file" in why) for w, why in result.failed] == [("factory_001/worker_001", True)]
