"""HF_TOKEN never leaves the process: the whole clip graph runs through Dagster against the
stand-in hub with a marked token (the hub refuses requests without it), then a run with a
wrong marked token fails; neither token appears in stdout/stderr, logging, any event of
the instance's event log, run configs, materialization metadata, or any file under the
data root, DAGSTER_HOME, the index cache or the DuckDB file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dagster import DagsterInstance, EnvVar
from dagster._serdes import serialize_value

from egoclean_assets.definitions import build_definitions
from egoclean_assets.partitions import add_clip_partitions
from tests.support.hubstub import HubStub

from .conftest import MARKED_TOKEN, ROOT, graph_resources

WRONG = "hf_EGOCLEANWRONGTOKEN9876543210zyxwvu"


def test_token_never_recorded_anywhere(synth_dataset, tiny_model, tmp_path, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    home, root, cache, db = tmp_path / "dagster_home", tmp_path / "data", tmp_path / "cache", tmp_path / "x.duckdb"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", MARKED_TOKEN)
    key = synth_dataset["keys"][0]
    with HubStub(synth_dataset["source"], token=MARKED_TOKEN) as stub, DagsterInstance.get() as instance:
        add_clip_partitions(instance, [key])

        def run(token_env: str):
            res = graph_resources(stub.url, root, db, tiny_model, synth_dataset["summary"]["ground_truth"],
                                  endpoint=stub.endpoint, cache_dir=str(cache), token=EnvVar(token_env))
            job = build_definitions(res).resolve_job_def("clip_pipeline")
            return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)

        good = run("HF_TOKEN")
        assert good.success
        # the token really was needed and sent (the hub refuses requests without it)
        assert any(r.headers.get("authorization") == f"Bearer {MARKED_TOKEN}" for r in stub.requests)
        monkeypatch.setenv("EGOCLEAN_WRONG_TOKEN", WRONG)
        (root / "factory_001").rename(tmp_path / "first-run-data")  # the second run must fetch again
        bad = run("EGOCLEAN_WRONG_TOKEN")
        assert not bad.success
        assert "HTTP 403" in serialize_value(bad.all_events)

        records = []
        for r in instance.get_runs():
            records.append(serialize_value(r.run_config))
            records.append(serialize_value(r.tags))
            records.extend(serialize_value(e) for e in instance.all_logs(r.run_id))
        captured = capfd.readouterr()
        texts = {"stdout": captured.out, "stderr": captured.err, "logging": caplog.text,
                 "event log / run config / metadata": "\n".join(records)}
        assert "ASSET_MATERIALIZATION" in texts["event log / run config / metadata"]
    files = [p for d in (root, tmp_path / "first-run-data", home, cache) for p in Path(d).rglob("*") if p.is_file()]
    files.append(db)
    assert len(files) > 20
    for tok in (MARKED_TOKEN, WRONG):
        for where, text in texts.items():
            assert tok not in text, f"token found in {where}"
        for f in files:
            assert tok.encode() not in f.read_bytes(), f"token found in {f}"
