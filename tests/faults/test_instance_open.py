"""Two processes opening a fresh Dagster instance at once (the README's flow: `dagster dev` and the
backfill CLI) both succeed, and the instance opens afterwards: on PostgreSQL with the shipped
deploy/dagster.cluster.yaml, and on SQLite with LockedSqliteStorage. Before, Dagster's first open
stamped the schema version from both processes and left the instance unopenable ("more than one
head present"; seen here in the first try on SQLite)."""

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance

ROOT = Path(__file__).resolve().parents[2]
TRIES = 6

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


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_open_a_fresh_instance_at_once(kind, tmp_path, request, monkeypatch):
    import os

    for i in range(TRIES):
        home = tmp_path / f"home{i}"
        home.mkdir()
        env = dict(os.environ) | {"DAGSTER_HOME": str(home)}
        if kind == "sqlite":
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
