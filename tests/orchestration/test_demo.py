"""`bash scripts/demo.sh`, the README's first command, run as a user runs it (data and instance in a temp folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_demo_runs_every_asset_and_check_and_exports_a_dataset(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")  # the instance the demo uses
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EGOCLEAN_", "AWS_", "DAGSTER_", "RAY_")) and k not in ("HF_TOKEN", "PYTHONPATH")}
    env["DAGSTER_HOME"] = str(home)
    data = tmp_path / "demo"
    # the README's command with its defaults (2 clips of 60 s); only where it writes is moved out of the checkout
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), "--data-root", str(data)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout
    assert proc.returncode == 0, (out[-3000:], proc.stderr[-3000:])
    clips = ("factory001_worker001_00000", "factory001_worker001_00001")
    for clip in clips:
        assert re.search(rf"^{clip}: run \w+ succeeded in", out, re.M), out[-3000:]
    assert re.search(r"^lerobot_dataset: run \w+ succeeded in", out, re.M), out[-3000:]
    checks = re.findall(r"^  check (\S+): (passed|WARNING|FAILED)", out, re.M)
    assert len(checks) == 2 * 7 + 2 and not any(state == "FAILED" for _, state in checks), checks
    ious = [float(x) for x in re.findall(r"matches_ground_truth: passed - IoU per ground-truth span \[([\d.]+)\]", out)]
    assert len(ious) == 2 and min(ious) > 0.3, ious  # each clip's planted span found
    # the segments and the detections against ground truth, printed from DuckDB, one row per clip each
    assert all(out.count(f"{c} │ ") >= 2 for c in clips), out[-3000:]
    info = json.loads((data / "lerobot" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] > 0, info
    assert (data / "demo.env").is_file() and (data / "egoclean.duckdb").is_file()
    assert f"source {data / 'demo.env'} && .venv/bin/dagster dev" in out
