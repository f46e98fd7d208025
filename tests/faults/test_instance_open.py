"""Two processes opening a fresh Dagster instance at once (the README's flow: `dagster dev` and the
backfill CLI) both succeed, and the instance opens afterwards: with the shipped single-machine
dagster_home/dagster.yaml (SQLite, the folder left to Dagster), on PostgreSQL with the shipped
deploy/dagster.cluster.yaml, and on SQLite with LockedSqliteStorage named outright. Before, Dagster's
first open stamped the schema version from both processes and left the instance unopenable ("more
than one head present"; seen here in the first try on SQLite, and with the shipped single-machine
yaml in 2 of 6 tries). An instance made before the lock (Dagster's own SQLite storage) keeps its runs."""

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

ROOT = Path(__file__).resolve().parents[2]
# the unlocked default yaml failed 4 of 10 tries here: 8 tries miss it with p < 2 %
TRIES = {"default": 8, "sqlite": 6, "postgres": 6}

OPEN = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.002)
from dagster import DagsterInstance
with DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
print("opened")
"""


def _open_twice_at_once(tmp_path: Path, env: dict) -> list[tuple[int, str]]:
    script, go = tmp_path / "open.py", tmp_path / f"go-{uuid.uuid4().hex[:6]}"
    script.write_text(OPEN)
    procs = [subprocess.Popen([sys.executable, str(script), str(go)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    time.sleep(3.0)  # both have imported Python and wait for the signal
    go.touch()
    out = []
    for p in procs:
        o, _ = p.communicate(timeout=180)
        out.append((p.returncode, o[-2000:]))
    return out


@pytest.mark.parametrize("kind", ["default", "sqlite", "postgres"])
def test_two_processes_open_a_fresh_instance_at_once(kind, tmp_path, request, monkeypatch):
    import os

    for i in range(TRIES[kind]):
        home = tmp_path / f"home{i}"
        home.mkdir()
        env = dict(os.environ) | {"DAGSTER_HOME": str(home)}
        if kind == "default":
            shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
        elif kind == "sqlite":
            (home / "dagster.yaml").write_text(
                "storage:\n  custom:\n    module: egoclean_assets.instance_storage\n"
                f"    class: LockedSqliteStorage\n    config:\n      base_dir: {home}\n")
        else:
            pg = request.getfixturevalue("postgres")
            shutil.copy(ROOT / "deploy" / "dagster.cluster.yaml", home / "dagster.yaml")
            env["EGOCLEAN_PG_URL"] = pg.url(pg.createdb(f"open_{uuid.uuid4().hex[:8]}"))
        results = _open_twice_at_once(tmp_path, env)
        assert all(rc == 0 and "opened" in o for rc, o in results), f"try {i}: {results}"
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with DagsterInstance.get() as instance:  # a third process's view: still opens
            assert instance.get_runs(limit=1) == []


def test_an_instance_made_before_the_lock_opens_with_its_runs(tmp_path, monkeypatch):
    """A dagster_home made by Dagster's own SQLite storage (the yaml before the lock) opens with the
    shipped yaml: same folder, same runs, now through LockedSqliteStorage."""
    from dagster import job, op

    @op
    def one():
        return 1

    @job
    def tiny():
        one()

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_ref().storage_data.class_name == "DagsterSqliteStorage"
        run_id = tiny.execute_in_process(instance=instance).run_id
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        storage = instance.get_ref().storage_data
        assert storage.class_name == "LockedSqliteStorage"
        assert yaml.safe_load(storage.config_yaml) == {"base_dir": str(home)}
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.is_success
        assert [r.run_id for r in instance.get_runs()] == [run_id]
