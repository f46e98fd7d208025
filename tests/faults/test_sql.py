"""`egoclean sql` is read-only for the database and for the machine, offline, and bounded.

The real CLI in a fresh process (as a user runs it) on a real DuckDB file, with HOME in
a temporary folder so any extension download or secret store DuckDB tried would show.
"""

from __future__ import annotations

import pytest

from egoclean.store import Store

from .conftest import cli

PEAK = """
import sys
from egoclean.cli import main
rc = main(sys.argv[1:])
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print("PEAK_MB", int(hwm) // 1024, "RC", rc, file=sys.stderr)
"""


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "e.duckdb"
    Store(path).init()
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    return path


def sql(query: str, db, tmp_path, *extra: str):
    return cli(["sql", query, "--db", str(db), *extra], env={"HOME": str(tmp_path / "home")})


@pytest.mark.parametrize("query, target", [
    ("COPY clips TO '{t}/out.csv'", "out.csv"),
    ("EXPORT DATABASE '{t}/exported'", "exported"),
    ("ATTACH '{t}/other.duckdb' AS o", "other.duckdb"),
    ("SELECT * FROM read_csv('{t}/secret.csv')", None),
    ("SELECT * FROM read_text('/etc/hostname')", None),
    ("INSTALL httpfs", None),
    ("SELECT * FROM 'http://127.0.0.1:9/x.csv'", None),
    ("SET enable_external_access = true", None),
    ("SET autoinstall_known_extensions = true", None),
])
def test_sql_refuses_the_machine_by_default(query, target, db, tmp_path):
    done = sql(query.format(t=tmp_path), db, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and str(db) in err and "Traceback" not in err, err
    assert "--allow-files" in err or "SET" in query, err
    if target:
        assert not (tmp_path / target).exists()
    assert not (tmp_path / "home" / ".duckdb").exists()  # nothing installed, no secrets stored


def test_allow_files_opens_files_but_still_installs_nothing(db, tmp_path):
    done = sql(f"SELECT * FROM read_csv('{tmp_path}/secret.csv')", db, tmp_path, "--allow-files")
    assert done.returncode == 0 and "1 row" in done.stdout, done.stderr
    done = sql(f"COPY clips TO '{tmp_path}/out.csv'", db, tmp_path, "--allow-files")
    assert done.returncode == 0 and (tmp_path / "out.csv").is_file(), done.stderr
    # Still offline: an http URL needs httpfs, which is neither downloaded nor auto-loaded.
    done = sql("SELECT * FROM 'http://127.0.0.1:9/x.csv'", db, tmp_path, "--allow-files")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "home" / ".duckdb" / "extensions").exists()
    # and the database itself stays read-only
    done = sql("DELETE FROM clips", db, tmp_path, "--allow-files")
    assert done.returncode == 2 and "read-only" in done.stderr


def test_max_rows_does_not_load_every_row(db, tmp_path):
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    done = subprocess.run([sys.executable, "-c", PEAK, "sql", "SELECT range AS i FROM range(20000000)",
                           "--db", str(db), "--max-rows", "3"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")})
    assert "RC 0" in done.stderr, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [ln.split("│")[1].strip() for ln in lines[3:6]] == ["0", "1", "2"]
    assert "3 rows shown" in lines[-1] and "more" in lines[-1], lines[-1]
    peak = int(done.stderr.split("PEAK_MB")[1].split()[0])
    assert peak < 400, f"{peak} MB to show 3 of 20 million rows"


@pytest.mark.parametrize("query, target", [
    ("COPY (SELECT 'factory001_worker001_00001' AS clip_id) TO '{t}/written.csv'", "written.csv"),
    ("SELECT content AS clip_id FROM read_text('{t}/secret.csv')", None),
    ("INSTALL httpfs", None),
    ("ATTACH '{t}/other.duckdb' AS o", "other.duckdb"),
    ("SET enable_external_access = true", None),
])
def test_export_sql_runs_in_the_same_sandbox(query, target, db, tmp_path):
    """`egoclean export --sql` selects with the sandbox of `egoclean sql`: it cannot write, read files
    (not even into its error message) or download; nothing is exported."""
    done = cli(["export", "--db", str(db), "--out", str(tmp_path / "ds"), "-q", "--sql", query.format(t=tmp_path)],
               env={"HOME": str(tmp_path / "home")})
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "query refused on " in err and "Traceback" not in err, err
    assert "a,b" not in err and "1,2" not in err  # the file's content does not come back in the message
    if target:
        assert not (tmp_path / target).exists()
    assert not (tmp_path / "ds").exists() and not (tmp_path / "home" / ".duckdb").exists()


def test_ctrl_c_stops_a_long_query_with_one_line(db, tmp_path):
    """SIGINT while DuckDB runs a long query stops it (DuckDB's interrupt) and the CLI says `interrupted`,
    exit 130 (before: usually still running 30 s later; when it stopped, a traceback)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    p = subprocess.Popen([sys.executable, "-m", "egoclean.cli", "sql", "SELECT count(*) FROM range(10000000000000)",
                          "--db", str(db)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")})
    try:
        def cpu_sec() -> float:
            fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        deadline = time.monotonic() + 120
        while cpu_sec() < 6.0:  # imports take ~2 s of CPU; beyond that DuckDB's threads are counting
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() is not None else ""
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130 and err.strip() == "interrupted", (p.returncode, err[-2000:])
