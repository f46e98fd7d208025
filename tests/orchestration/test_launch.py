"""Runs launched from the workspace's code location are ordinary runs of the job the UI shows.

A real run worker (code server started from workspace.yaml) runs a clip; then a real
`dagster dev` on the same DAGSTER_HOME is asked over GraphQL what its UI asks: the
job's runs (its page, filtered by repository), the Overview's runs of the repository,
and the run's snapshot and origin against the job's (the "may be a different version"
warning on Re-execute compares them).
"""

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tests.support.dagster_dev import DagsterDev
from egoclean_assets.launch import LOCATION, REPOSITORY, launch_partition_runs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    base = tmp_path_factory.mktemp("launch")
    summary = write_dataset(base / "source", SynthConfig(clips=1, duration_sec=20.0, width=160, height=96))
    model = save_tiny_model(base / "tiny-vjepa2")
    return {"base": base, "summary": summary, "model": str(model), "keys": [c["clip_id"] for c in summary["clips"]]}


def test_launched_run_shows_on_the_job_page_and_the_timeline_as_the_same_job_version(dataset, tmp_path,
                                                                                       monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {"EGOCLEAN_SOURCE": str(dataset["base"] / "source"), "EGOCLEAN_MODEL": dataset["model"],
           "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DATA_ROOT": str(tmp_path / "data"),
           "EGOCLEAN_DB": str(tmp_path / "e.duckdb"), "EGOCLEAN_GROUND_TRUTH_SEED": "0",
           "EGOCLEAN_GROUND_TRUTH": str(dataset["summary"]["ground_truth"]), "EGOCLEAN_CACHE": str(tmp_path / "c"),
           "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the code server and run worker inherit them
    key = dataset["keys"][0]
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("clips", [key])
        ((got_key, outcome),) = list(launch_partition_runs(instance, [key], tags={"egoclean/demo": "1"}))
    assert got_key == key and outcome.success, outcome.step_failures
    passed = {c.check_name: c.passed for c in outcome.checks}
    assert passed["same_frame_count"] and passed["embeddings_valid"] and passed["similarity_valid"], passed

    with DagsterDev(home, env, tmp_path / "dev.log") as dev:
        job = dev.graphql(
            "query($p: PipelineSelector!) { pipelineOrError(params: $p) { __typename ... on Pipeline { "
            "pipelineSnapshotId runs { runId status pipelineSnapshotId "
            "repositoryOrigin { repositoryLocationName repositoryName } tags { key value } } } } }",
            {"p": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                   "pipelineName": "clip_pipeline"}})["pipelineOrError"]
        assert job["__typename"] == "Pipeline"
        (run,) = [r for r in job["runs"] if r["runId"] == outcome.run_id]  # the job page lists it
        assert run["status"] == "SUCCESS"
        # same snapshot and origin as the loaded job: no "may be a different version" on Re-execute
        assert run["pipelineSnapshotId"] == job["pipelineSnapshotId"]
        assert run["repositoryOrigin"] == {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
        assert {"key": "dagster/partition", "value": key} in run["tags"]
        # the Overview timeline shows a repository's runs (filtered by its label tag)
        feed = dev.graphql(
            "query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId } } } }",
            {"f": {"tags": [{"key": ".dagster/repository", "value": f"{REPOSITORY}@{LOCATION}"}]}})
        assert outcome.run_id in [r["runId"] for r in feed["runsOrError"]["results"]]


def test_backfill_and_demo_export_runs_have_rows_on_their_job_pages(dataset, tmp_path, monkeypatch):
    """`python -m egoclean_assets.backfill` and the demo's export launch through the instance like the
    clip runs: each run is on its job's page (they had no row there, issue 18), and the export's
    materialization carries how to load the dataset and its counters; a failed run's unrun checks
    say why."""
    from egoclean_assets import backfill, demo

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    out = tmp_path / "lerobot"
    env = {"EGOCLEAN_SOURCE": str(dataset["base"] / "source"), "EGOCLEAN_MODEL": dataset["model"],
           "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DATA_ROOT": str(tmp_path / "data"),
           "EGOCLEAN_DB": str(tmp_path / "e.duckdb"), "EGOCLEAN_GROUND_TRUTH_SEED": "0",
           "EGOCLEAN_GROUND_TRUTH": str(dataset["summary"]["ground_truth"]), "EGOCLEAN_CACHE": str(tmp_path / "c"),
           "EGOCLEAN_EXPORT": str(out), "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the code server and run workers inherit them
    lines = []
    with DagsterInstance.get() as instance:
        assert backfill.backfill(["factory_001/worker_001"], instance, env, out=lines.append) == 0, lines
        assert demo._export(instance)
        runs = {r.job_name: r for r in instance.get_runs()}
        # a clip its shard does not hold: raw_tar fails on EgoClean's NotFoundError
        missing = "factory001_worker001_00099"
        instance.add_dynamic_partitions("clips", [missing])
        ((_, failed),) = list(launch_partition_runs(instance, [missing]))
    assert set(runs) == {"clip_pipeline", "export_dataset"}, lines
    assert failed.status == "FAILURE"

    with DagsterDev(home, env, tmp_path / "dev.log") as dev:
        for job_name, run in runs.items():
            job = dev.graphql(
                "query($p: PipelineSelector!) { pipelineOrError(params: $p) { ... on Pipeline { "
                "pipelineSnapshotId runs { runId status pipelineSnapshotId } } } }",
                {"p": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                       "pipelineName": job_name}})["pipelineOrError"]
            (listed,) = [r for r in job["runs"] if r["runId"] == run.run_id]  # its row on the job page
            assert listed["status"] == "SUCCESS" and listed["pipelineSnapshotId"] == job["pipelineSnapshotId"]
        # item 1: the run's failure rows start with EgoClean's line, as the run page shows them
        events = dev.graphql(
            "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename "
            "... on RunFailureEvent { error { message } } ... on ExecutionStepFailureEvent { stepKey "
            "error { message cause { message } } failureMetadata { description } } } } } }",
            {"id": failed.run_id})["logsForRun"]["events"]
        (step,) = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
        (run_failure,) = [e for e in events if e["__typename"] == "RunFailureEvent"]
        line = step["failureMetadata"]["description"]
        assert step["stepKey"] == "raw_tar" and line.startswith("NotFoundError: ") and missing in line, step
        for error in (step["error"], run_failure["error"]):
            assert error["message"].splitlines()[0] == f"dagster._core.definitions.events.Failure: {line}"
        assert step["error"]["cause"]["message"].startswith("egoclean.core.errors.NotFoundError: ")
        # item 5: the checks raw_tar's failure left unrun say why, as a warning, not "Execution failed"
        # (which Dagster 1.13 shows for a planned check of a failed run)
        for asset, name in (("rectified_clip", "same_frame_count"), ("vjepa_embeddings", "embeddings_valid"),
                            ("similarity_matrix", "similarity_valid"), ("anomaly_segments", "matches_ground_truth")):
            (check,) = dev.graphql(
                "query($a: AssetKeyInput!, $c: String!, $p: String) { assetCheckExecutions(assetKey: $a, "
                "checkName: $c, partition: $p, limit: 5) { runId status evaluation { severity description } } }",
                {"a": {"path": [asset]}, "c": name, "p": missing})["assetCheckExecutions"]
            assert check["runId"] == failed.run_id and check["status"] == "FAILED", (name, check)
            assert check["evaluation"]["severity"] == "WARN", (name, check)
            assert check["evaluation"]["description"] == (
                f"not evaluated: {asset} of {missing} was not produced (raw_tar failed: {line})"), (name, check)
        asset = dev.graphql(
            "{ assetOrError(assetKey: {path: [\"lerobot_dataset\"]}) { ... on Asset { assetMaterializations(limit: 1)"
            " { runId metadataEntries { label ... on MarkdownMetadataEntry { mdStr } ... on IntMetadataEntry "
            "{ intValue } } } } } }")["assetOrError"]
        (mat,) = asset["assetMaterializations"]
        assert mat["runId"] == runs["export_dataset"].run_id
        entries = {e["label"]: e for e in mat["metadataEntries"]}
        assert mat["metadataEntries"][0]["label"] == "load_with_lerobot"
        assert f"LeRobotDataset('local/egoclean', root={str(out)!r})" in entries["load_with_lerobot"]["mdStr"]
        assert "## Loading" in entries["dataset_card"]["mdStr"]
        assert entries["episodes_added"]["intValue"] == entries["episodes"]["intValue"] > 0
        assert entries["episodes_replaced"]["intValue"] == entries["episodes_rewritten"]["intValue"] == 0
