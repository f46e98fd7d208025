"""egoclean.cli: every command honours the same environment as the Dagster resources."""

import json

import pytest

from egoclean.cli import build_parser, main
from egoclean.settings import Settings
from egoclean.store import Store

ENV = {"EGOCLEAN_SOURCE": "/data/src", "EGOCLEAN_REVISION": "v2", "EGOCLEAN_MODEL": "/models/tiny",
       "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DTYPE": "fp32", "EGOCLEAN_BATCH": "8", "EGOCLEAN_DB": "/dbs/x.duckdb",
       "EGOCLEAN_EXPORT": "/out/lerobot"}


@pytest.mark.parametrize("argv, expected", [
    (["ls"], {"source": "/data/src", "revision": "v2"}),
    (["fetch", "factory001_worker001_00001"], {"source": "/data/src", "revision": "v2"}),
    (["embed", "in.mp4", "-o", "out"], {"model": "/models/tiny", "device": "cpu", "dtype": "fp32", "batch": 8}),
    (["sql", "SELECT 1"], {"db": "/dbs/x.duckdb"}),
    (["export"], {"db": "/dbs/x.duckdb", "out": "/out/lerobot"}),
])
def test_option_defaults_come_from_the_environment(argv, expected):
    args = build_parser(Settings.from_env(ENV)).parse_args(argv)
    assert {k: getattr(args, k) for k in expected} == expected
    # ... and an option given on the command line wins
    if "db" in expected:
        assert build_parser(Settings.from_env(ENV)).parse_args([*argv, "--db", "y.duckdb"]).db == "y.duckdb"


def test_sql_queries_egoclean_db(tmp_path, monkeypatch, capsys):
    # After `source data/demo/demo.env`, `egoclean sql` must find the demo's database.
    db = tmp_path / "demo.duckdb"
    Store(db).init()
    monkeypatch.setenv("EGOCLEAN_DB", str(db))
    monkeypatch.chdir(tmp_path)  # no data/egoclean.duckdb here
    assert main(["sql", "SELECT count(*) AS n FROM clips"]) == 0
    assert "1 row" in capsys.readouterr().out


def test_a_bad_environment_value_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("EGOCLEAN_BATCH", "many")
    assert main(["sql", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "EGOCLEAN_BATCH" in err and "'many'" in err


def test_synth_prints_a_short_summary_and_json_on_request(tmp_path, capsys):
    argv = ["synth", str(tmp_path / "ds"), "--clips", "1", "--duration", "7", "--width", "64", "--height", "48",
            "--fps", "10", "--no-anomalies"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 4 and "1 clip(s)" in out and "{" not in out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clips"][0]["clip_id"] == "factory001_worker001_00000"
