"""egoclean_assets.cluster without Ray: batching of keys, the local graph untouched (mode, K: tests/test_settings.py).

The Ray runs themselves are in tests/cluster/test_ray_pipeline.py (a real cluster in a network namespace)."""

import pytest

from egoclean.core.errors import InvalidInputError
from egoclean_assets import cluster

CLIP_ASSETS = cluster.CLIP_ASSETS


def test_contiguous_batches_split_at_k_and_at_gaps():
    order = [f"c{i}" for i in range(10)]
    assert cluster.contiguous_batches(order, order[:5], 2) == [["c0", "c1"], ["c2", "c3"], ["c4"]]
    # c2 is done (not listed): a range c1..c3 would re-run it, so c1 and c3 go to different runs
    assert cluster.contiguous_batches(order, ["c3", "c1", "c4", "c5"], 3) == [["c1"], ["c3", "c4", "c5"]]
    with pytest.raises(InvalidInputError, match="not registered"):
        cluster.contiguous_batches(order, ["zz"], 2)


def test_local_mode_keeps_the_per_clip_assets(monkeypatch):
    from egoclean_assets.definitions import build_definitions

    monkeypatch.delenv("EGOCLEAN_EXECUTION", raising=False)
    defs = build_definitions()
    for name in CLIP_ASSETS:
        a = defs.resolve_assets_def(name)
        assert a.node_def.name == name and a.backfill_policy is None
    assert "ray_cluster" not in defs.resources


def test_ray_mode_has_one_batched_step_with_the_same_keys_and_checks(monkeypatch):
    from dagster import BackfillPolicy

    from egoclean_assets.definitions import build_definitions

    local = build_definitions()
    monkeypatch.setenv("EGOCLEAN_EXECUTION", "ray")
    monkeypatch.setenv("EGOCLEAN_CLIPS_PER_RUN", "7")
    monkeypatch.setenv("EGOCLEAN_RAY_NUM_ACTORS", "2")
    defs = build_definitions()
    graph, lgraph = defs.resolve_asset_graph(), local.resolve_asset_graph()
    assert graph.get_all_asset_keys() == lgraph.get_all_asset_keys()
    assert graph.asset_check_keys == lgraph.asset_check_keys
    for name in CLIP_ASSETS:
        a = defs.resolve_assets_def(name)
        assert a.node_def.name == "clip_batch" and a.backfill_policy == BackfillPolicy.multi_run(7)
        key = a.get_asset_spec(a.key if len(a.keys) == 1 else next(k for k in a.keys if k.path[-1] == name)).key
        assert graph.get(key).parent_keys == lgraph.get(key).parent_keys, name
        assert graph.get(key).group_name == lgraph.get(key).group_name
    assert defs.resources["ray_cluster"].config().num_actors == 2
