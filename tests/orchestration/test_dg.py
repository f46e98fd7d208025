"""Dagster's current project conventions work on this project: [tool.dg] in pyproject.toml.

`dg check defs`, `dg list defs` and `dg launch` run as a user would (`dg dev` serves the
same code location; it was checked by hand, see README)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from egoclean_assets.partitions import CLIPS

ROOT = Path(__file__).resolve().parents[2]


def _dg() -> str:
    exe = Path(sys.executable).with_name("dg")
    if not exe.is_file():
        pytest.fail("dg is not installed (dagster-dg-cli is a dependency)")
    return str(exe)


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    e = {k: v for k, v in os.environ.items() if not k.startswith("EGOCLEAN_")}
    # the project's own venv is the active one (dg warns otherwise)
    return e | {"DAGSTER_HOME": str(home), "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                "EGOCLEAN_CACHE": str(tmp_path / "cache"), "NO_COLOR": "1", "COLUMNS": "200"}


def dg(env, *args, timeout=300):
    return subprocess.run([_dg(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_dg_check_and_list_defs(env):
    res = dg(env, "check", "defs")
    assert res.returncode == 0 and "All definitions loaded successfully" in res.stdout + res.stderr, res.stderr
    res = dg(env, "list", "defs", "--json")
    assert res.returncode == 0, res.stderr
    defs = json.loads(res.stdout)
    keys = {a["asset_key"] for a in defs["assets"]}
    assert {"raw_tar", "intrinsics", "rectified_clip", "vjepa_embeddings", "similarity_matrix",
            "anomaly_segments", "diagnostics_plot"} <= keys
    assert {"clip_pipeline", "discover_clips_job"} <= {j["name"] for j in defs["jobs"]}


def test_dg_launch_runs_a_job_on_the_instance(env, tmp_path):
    from egoclean.synth import SynthConfig, write_dataset

    write_dataset(tmp_path / "source", SynthConfig(clips=2, duration_sec=2.5, width=64, height=48, anomalies=False))
    env = env | {"EGOCLEAN_SOURCE": str(tmp_path / "source"), "EGOCLEAN_SCOPE": "factory_001/worker_001",
                 "EGOCLEAN_DATA_ROOT": str(tmp_path / "data")}
    res = dg(env, "launch", "--job", "discover_clips_job", timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    # one asset of one partition, as `dg launch --assets ... --partition ...`
    key = "factory001_worker001_00001"
    res = dg(env, "launch", "--assets", "raw_tar", "--partition", key, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert (tmp_path / "data" / "factory_001" / "worker_001" / key / "raw" / f"{key}.mp4").is_file()
    os.environ["DAGSTER_HOME"], old = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with DagsterInstance.get() as inst:
            assert sorted(inst.get_dynamic_partitions(CLIPS)) == ["factory001_worker001_00000",
                                                                  "factory001_worker001_00001"]
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = old


def test_dg_from_the_venv_without_activating_it_does_not_warn(env):
    """`.venv/bin/dg ...` as the README shows it: no venv-mismatch warning (dg dev printed it twice, issue 18)."""
    res = dg({k: v for k, v in env.items() if k != "VIRTUAL_ENV"}, "check", "defs")
    assert res.returncode == 0, res.stderr
    assert "does not match the virtual environment" not in res.stdout + res.stderr, res.stdout + res.stderr
