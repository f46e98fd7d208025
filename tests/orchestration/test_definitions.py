"""The definitions load through workspace.yaml, and the webserver serves the asset graph."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance, EnvVar

from egoclean_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ["raw_tar", "intrinsics", "rectified_clip", "vjepa_embeddings", "similarity_matrix", "anomaly_segments",
          "diagnostics_plot", "camera_trajectory", "trajectory_plot"]


def test_graph_shape_groups_pools_and_descriptions():
    graph = defs.resolve_asset_graph()
    nodes = {k.path[-1]: graph.get(k) for k in graph.get_all_asset_keys()}
    assert sorted(nodes) == sorted([*ASSETS, "training_episodes", "lerobot_dataset"])
    assert {n: nodes[n].group_name for n in ASSETS} == {
        "raw_tar": "phase1_ingest", "intrinsics": "phase1_ingest", "rectified_clip": "phase1_ingest",
        "vjepa_embeddings": "phase2_temporal", "similarity_matrix": "phase2_temporal",
        "anomaly_segments": "phase2_temporal", "diagnostics_plot": "phase2_temporal",
        "camera_trajectory": "phase3_motion", "trajectory_plot": "phase3_motion"}
    assert {n: nodes[n].pools for n in ASSETS if nodes[n].pools} == {"vjepa_embeddings": {"gpu"},
                                                                       "anomaly_segments": {"duckdb"},
                                                                       "camera_trajectory": {"duckdb"}}
    for n in ASSETS:
        assert nodes[n].partitions_def.name == "clips"
        assert nodes[n].description and "\n" not in nodes[n].description.split("\n\n")[0]
    parents = {n: sorted(k.path[-1] for k in nodes[n].parent_keys) for n in ASSETS}
    assert parents["rectified_clip"] == ["intrinsics", "raw_tar"]
    assert parents["diagnostics_plot"] == ["anomaly_segments", "similarity_matrix"]
    assert parents["camera_trajectory"] == ["intrinsics", "rectified_clip"]
    assert parents["trajectory_plot"] == ["anomaly_segments", "camera_trajectory"]
    assert {k.name for k in graph.asset_check_keys} == {"matches_ground_truth", "same_frame_count",
                                                         "embeddings_valid", "similarity_valid",
                                                         "dataset_consistent", "frames_match_rectified",
                                                         "poses_valid", "tracked_enough", "head_motion_plausible"}
    # phase 3: per-clip episodes, and the one dataset assembled from every clip
    assert {n: nodes[n].group_name for n in ("training_episodes", "lerobot_dataset")} == {
        "training_episodes": "phase3_export", "lerobot_dataset": "phase3_export"}
    assert nodes["training_episodes"].partitions_def.name == "clips"
    assert nodes["lerobot_dataset"].partitions_def is None and nodes["lerobot_dataset"].pools == {"duckdb"}
    assert sorted(k.path[-1] for k in nodes["training_episodes"].parent_keys) == [
        "anomaly_segments", "camera_trajectory", "intrinsics", "rectified_clip", "similarity_matrix",
        "vjepa_embeddings"]
    assert [k.path[-1] for k in nodes["lerobot_dataset"].parent_keys] == ["training_episodes"]


def test_token_is_an_env_var_not_a_value(monkeypatch):
    from egoclean_assets.resources import build_resources

    res = build_resources({"HF_TOKEN": "hf_secretvalue123", "EGOCLEAN_DB": "x.duckdb"})
    # Dagster keeps the EnvVar (the variable's name); the value is only read inside a run
    token = res["source"].token
    assert isinstance(token, EnvVar) and token.env_var_name == "HF_TOKEN"
    assert "hf_secretvalue123" not in repr(res["source"])
    assert res["store"].path == "x.duckdb"
    assert build_resources({})["source"].token is None


def test_dagster_yaml_sets_pools_and_run_queue(tmp_path):
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as inst:
        cfg = inst.get_concurrency_config()
        assert cfg.pool_config.default_pool_limit == 1
        assert cfg.run_queue_config.max_concurrent_runs == 4
        assert type(inst.run_coordinator).__name__ == "QueuedRunCoordinator"
        for pool in ("gpu", "duckdb"):
            assert inst.event_log_storage.get_concurrency_info(pool).limit == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_webserver_loads_workspace_and_lists_assets(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "EGOCLEAN_DATA_ROOT": str(tmp_path / "data")}
    exe = Path(sys.executable).with_name("dagster-webserver")
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen([str(exe), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        data, deadline = None, time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                data = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")
                if data.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        log.flush()
        assert data and data.get("data"), (tmp_path / "webserver.log").read_text()[-3000:]
        nodes = {tuple(n["assetKey"]["path"]): n["groupName"] for n in data["data"]["assetNodes"]}
        assert sorted(p[-1] for p in nodes) == sorted([*ASSETS, "training_episodes", "lerobot_dataset"])
        assert nodes[("raw_tar",)] == "phase1_ingest" and nodes[("anomaly_segments",)] == "phase2_temporal"
        assert nodes[("lerobot_dataset",)] == "phase3_export"
        # the code location loaded without errors
        loc = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                             "locationOrLoadError { __typename } } } } }")
        (entry,) = loc["data"]["workspaceOrError"]["locationEntries"]
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert proc.returncode is not None


def test_build_resources_reads_every_setting_from_the_mapping(tmp_path):
    from egoclean_assets.resources import RectifyResource, build_resources

    env = {"EGOCLEAN_SOURCE": "data/src", "EGOCLEAN_REVISION": "v1", "HF_ENDPOINT": "http://127.0.0.1:9",
           "EGOCLEAN_DATA_ROOT": "s3://b/p", "EGOCLEAN_WORK_DIR": "/tmp/w", "EGOCLEAN_MODEL": "m",
           "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DTYPE": "fp32", "EGOCLEAN_BATCH": "2", "EGOCLEAN_DB": "x.duckdb",
           "EGOCLEAN_DB_DATA_PATH": "s3://b/t/", "EGOCLEAN_GROUND_TRUTH": "a.csv:b.csv",
           "EGOCLEAN_GROUND_TRUTH_SEED": "0", "EGOCLEAN_SCOPE": "factory_00*/*, factory_010/worker_001",
           "EGOCLEAN_EXPORT": "out/lr", "EGOCLEAN_CACHE": str(tmp_path)}
    res = build_resources(env, rectify=RectifyResource(balance=0.5))
    src, enc = res["source"], res["encoder"]
    assert (src.url, src.revision, src.endpoint, src.cache_dir) == ("data/src", "v1", "http://127.0.0.1:9",
                                                                    str(tmp_path / "index"))
    assert (enc.model, enc.device, enc.dtype, enc.batch_size) == ("m", "cpu", "fp32", 2)
    assert (res["storage"].data_root, res["storage"].work_dir) == ("s3://b/p", "/tmp/w")
    assert (res["store"].path, res["store"].data_path, res["export"].out) == ("x.duckdb", "s3://b/t/", "out/lr")
    assert (res["ground_truth"].include_seed, res["ground_truth"].paths) == (False, ["a.csv", "b.csv"])
    assert res["discovery"].scope == ["factory_00*/*", "factory_010/worker_001"]
    assert res["rectify"].balance == 0.5 and res["io_manager"].storage is res["storage"]


def test_a_bad_setting_is_one_line_naming_the_variable():
    from egoclean.core.errors import InvalidInputError
    from egoclean_assets.resources import build_resources

    for name, value in (("EGOCLEAN_BATCH", "four"), ("EGOCLEAN_BATCH", "0"), ("EGOCLEAN_GROUND_TRUTH_SEED", "maybe")):
        with pytest.raises(InvalidInputError, match=f"environment variable {name}: .*{value}") as e:
            build_resources({name: value})
        assert "\n" not in str(e.value)


def test_every_job_runs_its_steps_in_the_run_process():
    """No job pays a step process per op: discover_clips_job's 0.4 s listing cost 13 s with the
    multiprocess default (issue 18)."""
    from dagster import in_process_executor

    for name in ("clip_pipeline", "discover_clips_job", "export_dataset"):
        assert defs.resolve_job_def(name).executor_def is in_process_executor, name
