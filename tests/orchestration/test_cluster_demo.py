"""`bash scripts/cluster-demo.sh`, the README's shared-storage demo, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cluster_demo_script_runs_the_graph_on_shared_storage_and_stops_its_servers():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EGOCLEAN_", "AWS_", "DAGSTER_", "RAY_")) and k not in ("HF_TOKEN", "PYTHONPATH")}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "cluster-demo.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout
    assert proc.returncode == 0, (out[-3000:], proc.stderr[-3000:])
    clips = ("factory001_worker001_00000", "factory001_worker002_00000")
    # the instance's run storage: LockedPostgresStorage's, Dagster's PostgresRunStorage pooled while creating runs
    assert re.search(r"\bPooledPostgresRunStorage: \d+ runs; clips done: " + ", ".join(clips), out), out[-3000:]
    # the two tables (anomaly segments, detection_eval) have a row per clip; the bucket holds artifacts and Parquet
    assert all(out.count(f"{c} │ ") >= 2 for c in clips), out[-3000:]
    m = re.search(r"s3://egoclean: \d+ objects \((\d+) artifacts, (\d+) Parquet files", out)
    assert m and int(m[1]) > 0 and int(m[2]) > 0, out[-3000:]
    assert "_rectified.mp4" in out and "raw/" not in out.split("s3://egoclean:")[-1]
    pids = re.search(r"PostgreSQL pid (\d+), S3 server pid (\d+)", out)
    assert pids and not _alive(int(pids[1])) and not _alive(int(pids[2]))
