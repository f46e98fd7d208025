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


# Distinct strings of a million rows: a hash table of some 100 MB, in a fraction of a second.
BIG = "SELECT count(DISTINCT (range * 7919)::VARCHAR || '-padding-padding') AS n FROM range(1000000)"


def test_a_query_over_the_memory_limit_fails_naming_it_and_spills_nothing(db, tmp_path):
    """The sandbox's memory is EGOCLEAN_SQL_MEMORY (default 2GiB), not DuckDB's 80 % of RAM, and nothing
    spills to disk: a query that needs more fails with one line naming the limit and the variable, in
    `egoclean sql` and `export --sql` (before: the limit could not be lowered and DuckDB spilled beside the
    database, `e.duckdb.tmp`)."""
    small = {"HOME": str(tmp_path / "home"), "EGOCLEAN_SQL_MEMORY": "32MiB"}
    done = cli(["sql", BIG, "--db", str(db)], env=small)
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"query on {db} needs more memory than its limit of 32MiB" in err and "raise EGOCLEAN_SQL_MEMORY" in err
    assert "Out of Memory Error" in err and "SET " not in err, err  # DuckDB's advice to SET is not repeated
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.rglob("duckdb_temp*"))
    done = cli(["export", "--db", str(db), "--out", str(tmp_path / "ds"), "-q", "--sql",
                f"SELECT clip_id FROM clips UNION ALL SELECT 'factory001_worker001_00001' FROM ({BIG}) WHERE n < 0"],
               env=small)
    assert done.returncode == 2 and "needs more memory than its limit of 32MiB" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "ds").exists()
    # the same query under the default limit runs, still with nothing spilled
    done = cli(["sql", BIG, "--db", str(db)], env={"HOME": str(tmp_path / "home")})
    assert done.returncode == 0 and "1000000" in done.stdout, done.stderr
    assert not list(tmp_path.glob("*.tmp"))
    limits = Store(db, sql_memory="48MiB").query_head(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')", sandbox=True)[1]
    assert limits == [("48.0 MiB", "")]


@pytest.mark.parametrize("bad", ["lots", "2", "0GiB", "1MiB", "2 parsecs", "nan GB", "-1GB"])
def test_a_bad_sql_memory_setting_is_one_line(bad, db, tmp_path):
    done = cli(["sql", "SELECT 1", "--db", str(db)], env={"HOME": str(tmp_path / "home"), "EGOCLEAN_SQL_MEMORY": bad})
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and "EGOCLEAN_SQL_MEMORY" in err, err
    assert "at least 16MiB" in err and "Traceback" not in err
