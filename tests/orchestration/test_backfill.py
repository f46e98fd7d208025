"""The backfill CLI: registers a worker's clips in the instance at DAGSTER_HOME; bad scopes fail clearly."""

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from egoclean_assets import backfill
from egoclean_assets.partitions import CLIPS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    from egoclean.synth import SynthConfig, write_dataset

    write_dataset(tmp_path / "source", SynthConfig(workers=2, clips=2, duration_sec=2.5, width=64, height=48,
                                                   anomalies=False))
    h = tmp_path / "dagster_home"
    h.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", h / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(h))
    monkeypatch.setenv("EGOCLEAN_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_register_only_adds_the_workers_clips_to_the_persistent_instance(home, capsys):
    rc = backfill.main(["factory_001/worker_002", "--source", str(home / "source"), "--register-only"])
    assert rc == 0
    assert "1 worker(s): factory_001/worker_002; 2 clip(s), 2 newly registered" in capsys.readouterr().out
    with DagsterInstance.get() as inst:
        assert sorted(inst.get_dynamic_partitions(CLIPS)) == [
            "factory001_worker002_00000", "factory001_worker002_00001"]
    # a pattern with a limit: the first clip in scope (worker_001 sorts first) is new
    assert backfill.main(["factory_001/*", "--source", str(home / "source"), "--register-only", "--limit", "1"]) == 0
    with DagsterInstance.get() as inst:
        assert len(inst.get_dynamic_partitions(CLIPS)) == 3


def test_unknown_worker_is_a_clear_error(home, capsys):
    rc = backfill.main(["factory_001/worker_009", "--source", str(home / "source"), "--register-only"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no worker" in err and "factory_001/worker_009" in err
    rc = backfill.main(["factory_007/worker_001", "--source", str(home / "source"), "--register-only"])
    assert rc == 2 and "factory_007" in capsys.readouterr().err
    # Beside a pattern, a worker named outright that is not there is still bad input: one
    # line, exit 2, nothing registered (the pattern's workers neither).
    rc = backfill.main(["factory_001/*", "factory_001/worker_009", "--source", str(home / "source"),
                        "--register-only"])
    err = capsys.readouterr().err
    assert rc == 2 and "no worker factory_001/worker_009" in err and len(err.strip().splitlines()) == 1, err
    with DagsterInstance.get() as inst:
        assert inst.get_dynamic_partitions(CLIPS) == []


def test_a_missing_factory_in_a_pattern_is_named_and_the_rest_registered(home, capsys):
    """A pattern over a factory the source lacks is not bad input: named on stderr, exit 1, the rest registered."""
    rc = backfill.main(["factory_009/*", "factory_001/worker_002", "--source", str(home / "source"),
                        "--register-only"])
    out = capsys.readouterr()
    assert rc == 1 and "skipped worker factory_009: factory factory_009 not found" in out.err, out.err
    with DagsterInstance.get() as inst:
        assert sorted(inst.get_dynamic_partitions(CLIPS)) == [
            "factory001_worker002_00000", "factory001_worker002_00001"]


@pytest.mark.parametrize("case", ["missing", "a-file", "no-yaml-here"])
def test_a_bad_dagster_home_is_a_clear_error(case, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    if case == "a-file":
        home.write_text("not a folder")
    monkeypatch.setenv("DAGSTER_HOME", str(home) if case != "no-yaml-here" else "")
    monkeypatch.chdir(tmp_path)  # no ./dagster_home here either
    rc = backfill.main(["factory_001/worker_001", "--source", str(tmp_path), "--register-only"])
    err = capsys.readouterr().err
    assert rc == 2 and "DAGSTER_HOME" in err and len(err.strip().splitlines()) == 1, err
    if case != "no-yaml-here":
        assert str(home) in err


def test_exported_hf_token_does_not_break_the_command_line_backfill(home, monkeypatch, capsys):
    # As the README says to do: `export HF_TOKEN=...`, then backfill from the (gated)
    # hub. The source resource holds EnvVar("HF_TOKEN"), which only a run may resolve;
    # discovery happens outside a run and used to fail with "Attempted to directly
    # retrieve environment variable EnvVar("HF_TOKEN")".
    from tests.support.hubstub import HubStub

    token = "hf_EGOCLEANBACKFILLTOKEN0123456789"
    with HubStub(home / "source", token=token) as stub:
        monkeypatch.setenv("HF_TOKEN", token)
        monkeypatch.setenv("HF_ENDPOINT", stub.endpoint)
        monkeypatch.delenv("EGOCLEAN_SOURCE", raising=False)
        assert backfill.main(["factory_001/worker_002", "--register-only"]) == 0
        assert backfill.main(["factory_001/worker_001", "--source", "hf://datasets/builddotai/Egocentric-10K",
                              "--register-only"]) == 0
        assert any(r.headers.get("authorization") == f"Bearer {token}" for r in stub.requests)
    out, err = capsys.readouterr()
    assert out.count("2 clip(s), 2 newly registered") == 2 and token not in out + err


def test_readme_backfill_steps_work_as_written_after_sourcing_demo_env(home, monkeypatch, capsys):
    """The README's commands after `source data/demo/demo.env`, against a source shaped like the demo's."""
    import shlex

    from egoclean_assets.demo import DEMO_RUN_PREFIX, DEMO_SCOPE, DEMO_WORKERS

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("```bash\nsource data/demo/demo.env"):]
    block = block[len("```bash"):]
    block = block[: block.index("```")]
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if "egoclean_assets.backfill" in line]
    assert commands and all(c[:3] == [".venv/bin/python", "-m", "egoclean_assets.backfill"] for c in commands)
    register = next(c[3:] for c in commands if "--register-only" in c)
    # the worker the README names exists in the demo's source and is not one the demo ran
    worker = register[0]
    assert DEMO_WORKERS >= 2 and worker == "factory_001/worker_002" and "worker002" not in DEMO_RUN_PREFIX
    monkeypatch.setenv("EGOCLEAN_SOURCE", str(home / "source"))  # what demo.env exports
    monkeypatch.setenv("EGOCLEAN_SCOPE", DEMO_SCOPE)
    assert backfill.main(register) == 0
    with DagsterInstance.get() as inst:
        assert sorted(inst.get_dynamic_partitions(CLIPS)) == [
            "factory001_worker002_00000", "factory001_worker002_00001"]
