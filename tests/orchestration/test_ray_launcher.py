"""egoclean_assets.ray_launcher and the Ray deployment files (deploy/dagster.ray.yaml,
deploy/ray-cluster.yaml, docs/SCALE.md) describing one cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from egoclean.core import defaults

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("dagster_ray")  # the optional `cluster` extra

from egoclean_assets.ray_launcher import EgoCleanRayRunLauncher, forwarded_environment  # noqa: E402


def _deploy(name: str) -> dict:
    return yaml.safe_load((ROOT / "deploy" / name).read_text())


def test_the_forwarded_environment_is_derived_from_the_one_list():
    names = [v.name for v in defaults.ENVIRONMENT]
    environ = {n.replace("*", "NUM_ACTORS"): f"v{i}" for i, n in enumerate(names)}
    environ.update({"EGOCLEAN_PG_URL": "postgresql://u:p@127.0.0.1/d", "AWS_ACCESS_KEY_ID": "a",
                    "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "PGPASSWORD": "p", "HOME": "/root",
                    "PATH": "/usr/bin", "OTHER_TOKEN": "no", "EGOCLEAN_PG_PID": "1"})
    instance = _deploy("dagster.ray.yaml")
    got = forwarded_environment(environ, instance)
    every = set(environ) - {"HOME", "PATH", "OTHER_TOKEN", "EGOCLEAN_PG_PID"}
    assert set(got) == every  # EGOCLEAN_PG_URL because the instance yaml reads it ({env: ...})
    assert all(got[k] == environ[k] for k in got)
    # without the instance's {env: ...} the PostgreSQL URL would not travel
    assert "EGOCLEAN_PG_URL" not in forwarded_environment(environ, {})


def test_a_runs_own_env_vars_tag_adds_to_the_derived_environment_not_instead():
    from dagster import DagsterRun
    from dagster_ray.core.run_launcher import RayLauncherConfig
    from dagster_ray.utils import resolve_env_vars_list

    from egoclean_assets.ray_launcher import with_derived_environment

    derived = ["EGOCLEAN_PG_URL=postgresql://u@127.0.0.1/d", "AWS_REGION=us-east-1", "EGOCLEAN_DEVICE=cpu"]
    tag = {"num_cpus": 2, "env_vars": ["EGOCLEAN_DEVICE=cuda", "EXTRA=1"]}
    run = DagsterRun(job_name="clip_pipeline", run_id="r1", tags={"dagster-ray/config": json.dumps(tag)})
    # read as dagster-ray's launcher reads it (RayLauncherConfig.from_tags, then the list resolved in order)
    sent = RayLauncherConfig.from_tags(with_derived_environment(run, derived).tags)
    assert resolve_env_vars_list(sent.env_vars) == {"EGOCLEAN_PG_URL": "postgresql://u@127.0.0.1/d",
                                                    "AWS_REGION": "us-east-1", "EGOCLEAN_DEVICE": "cuda", "EXTRA": "1"}
    assert sent.num_cpus == 2  # the rest of the tag as it was
    # dagster-ray alone would send the tag's list instead of the launcher's: no database URL, no credentials
    assert resolve_env_vars_list(RayLauncherConfig.from_tags(run.tags).env_vars) == {"EGOCLEAN_DEVICE": "cuda",
                                                                                    "EXTRA": "1"}
    for untouched in (DagsterRun(job_name="clip_pipeline", run_id="r2", tags={}),
                      DagsterRun(job_name="clip_pipeline", run_id="r3",
                                 tags={"dagster-ray/config": json.dumps({"num_cpus": 2})})):
        assert with_derived_environment(untouched, derived) is untouched  # the launcher's env_vars apply as they are


def test_a_hand_kept_env_vars_list_is_refused():
    cfg = _deploy("dagster.ray.yaml")["run_launcher"]
    assert cfg["module"] == "egoclean_assets.ray_launcher" and "env_vars" not in cfg["config"]["ray"]
    launcher = EgoCleanRayRunLauncher.from_config_value(None, cfg["config"])
    assert launcher.resources == {"dagster_run": 1} and not launcher.num_cpus
    with pytest.raises(ValueError, match="env_vars is derived"):
        EgoCleanRayRunLauncher.from_config_value(None, {"ray": {**cfg["config"]["ray"], "env_vars": ["HF_TOKEN"]}})


def test_the_cluster_yaml_the_instance_and_scale_describe_one_cluster():
    cluster, instance = _deploy("ray-cluster.yaml"), _deploy("dagster.ray.yaml")
    nodes = cluster["available_node_types"]
    head = nodes[cluster["head_node_type"]]
    runs = instance["concurrency"]["runs"]["max_concurrent_runs"]
    # every run's Ray job fits on the head at once: one dagster_run each, no CPU (the head has none)
    assert head["resources"] == {"CPU": 0, "dagster_run": runs}
    assert any('"dagster_run": 64' in c for c in cluster["head_start_ray_commands"]) and runs == 64
    gpu, cpu = nodes["gpu"], nodes["cpu"]
    assert gpu["min_workers"] == gpu["max_workers"] and cpu["min_workers"] == cpu["max_workers"]
    assert cluster["max_workers"] == gpu["max_workers"] + cpu["max_workers"]
    scale = (ROOT / "docs" / "SCALE.md").read_text()
    m = re.search(r"(\d+) GPU nodes with one H200 and (\d+) vCPUs each", scale)
    assert m and (int(m[1]), int(m[2])) == (gpu["max_workers"], gpu["resources"]["CPU"])
    m = re.search(r"(\d+) CPU nodes with (\d+) vCPUs", scale)
    assert m and (int(m[1]), int(m[2])) == (cpu["max_workers"], cpu["resources"]["CPU"])
    assert f"{cpu['max_workers'] * cpu['resources']['CPU']} vCPUs" in scale
    assert f"{runs} runs at a time" in scale


def test_the_ray_job_monitor_does_nothing_without_the_ray_launcher():
    from dagster import DagsterInstance, build_sensor_context

    from egoclean_assets.sensors import ray_job_monitor_sensor

    with DagsterInstance.ephemeral() as instance:
        result = ray_job_monitor_sensor(build_sensor_context(instance=instance))
    assert "does not launch runs as Ray jobs" in result.skip_message


def test_the_ray_job_runs_the_projects_interpreter_never_a_bare_dagster():
    import shlex

    from egoclean_assets.ray_launcher import entrypoint_command

    payload = '{"__class__": "ExecuteRunArgs", "note": "it\'s quoted"}'
    cmd = entrypoint_command(["dagster", "api", "execute_run", payload], python="/opt/env/bin/python")
    assert shlex.split(cmd) == ["/opt/env/bin/python", "-m", "dagster", "api", "execute_run", payload]
    # an entry point that already names an interpreter (--use-python-environment-entry-point) is kept
    cmd = entrypoint_command(["/srv/venv/bin/python", "-m", "dagster", "api", "execute_run", payload])
    assert shlex.split(cmd)[:3] == ["/srv/venv/bin/python", "-m", "dagster"]


def test_a_ray_jobs_error_keeps_the_exit_code_and_its_last_log_lines_not_the_echoed_arguments():
    from egoclean_assets.ray_launcher import job_error

    args = "'" + '{"__class__": "ExecuteRunArgs", "instance_ref": {"x": "' + "y" * 3000 + '"}}' + "'"
    # the shape of a live job's message (tests/cluster/test_ray_job_monitor.py's run B)
    message = ("Job entrypoint command failed with exit code 127, last available logs (truncated to 20,000 chars):\n"
               "2026-12-05 21:38:46,761\tINFO job_manager.py:581 -- Runtime env is setting up.\n"
               f"Running entrypoint for job dagster-run-6ad21e6e: /opt/env/bin/python -m dagster api execute_run "
               f"{args}\n"
               "/bin/sh: 1: /opt/env/bin/python: not found\n")
    assert job_error(message) == ("Job entrypoint command failed with exit code 127:\n"
                                  "/bin/sh: 1: /opt/env/bin/python: not found")
    assert job_error(None) == job_error("") == ""
    trace = "\n".join(f"line {i}" for i in range(100))
    got = job_error(f"Job entrypoint command failed with exit code 1, last available logs (...):\n{trace}")
    assert got.splitlines()[1:] == [f"line {i}" for i in range(80, 100)]  # the last 20 lines: the error's end
