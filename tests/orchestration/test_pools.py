"""The instance's pools are set up when clips are registered, before any run claims them."""

import shutil
from pathlib import Path

from dagster import DagsterInstance

from egoclean_assets.definitions import build_definitions
from egoclean_assets.partitions import add_clip_partitions
from egoclean_assets.pools import POOLS, prepare_pools

ROOT = Path(__file__).resolve().parents[2]


def test_every_pool_an_asset_uses_is_prepared():
    graph = build_definitions().resolve_asset_graph()
    used = set().union(*(graph.get(k).pools or set() for k in graph.get_all_asset_keys()))
    assert used and used <= set(POOLS)


def test_registering_clips_writes_the_pool_rows_once_and_keeps_a_set_limit(tmp_path):
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as inst:
        storage = inst.event_log_storage
        assert not set(POOLS) & set(storage.get_concurrency_keys())  # a fresh instance has no rows
        add_clip_partitions(inst, ["factory001_worker001_00001"])
        assert set(POOLS) <= set(storage.get_concurrency_keys())
        assert all(storage.get_concurrency_info(p).limit == 1 for p in POOLS)
        storage.set_concurrency_slots("gpu", 8)  # `dagster instance concurrency set gpu 8`
        assert prepare_pools(inst) == []
        add_clip_partitions(inst, ["factory001_worker001_00002"])
        assert storage.get_concurrency_info("gpu").limit == 8
