"""The rehearsal of the real Ray deployment (tests/support/rehearsal.py), asserted the way a user relies on it.

PostgreSQL, the S3 API, a Ray head with the Jobs API and two worker nodes, a code server,
dagster-daemon with deploy/dagster.ray.yaml's launcher and the webserver, all in one
loopback-only network namespace; a backfill through GraphQL (as the UI sends it) with two
raylets SIGKILLed during it, and one through the CLI. It runs once (module fixture) and
every test reads its report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ray_head import namespace_command

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ("raw_tar", "intrinsics", "rectified_clip", "vjepa_embeddings", "similarity_matrix", "anomaly_segments",
          "diagnostics_plot", "camera_trajectory", "trajectory_plot")
CHECKS = ("same_frame_count", "embeddings_valid", "similarity_valid", "matches_ground_truth", "poses_valid",
          "tracked_enough", "head_motion_plausible")
CLIPS = [f"factory001_worker00{w}_{i:05d}" for w in (1, 2) for i in range(4)]
TOL = 1e-4  # float32 forward passes batched differently may differ in the last bits


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.fail("the rehearsal needs root with `unshare` and `ip` (a loopback-only network namespace)")
    pytest.importorskip("ray.dashboard")  # the cluster extra (ray[default])
    work = tmp_path_factory.mktemp("rehearsal")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGOCLEAN_", "RAY_", "DAGSTER_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(namespace_command(["-m", "tests.support.rehearsal", str(work)]), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=1500)
    finally:
        if proc.poll() is None:  # the rehearsal stops what it started; only a hung one is killed here
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    sys.stderr.write("".join(line + "\n" for line in err.splitlines() if line.startswith("rehearsal:")))
    last = out.strip().splitlines()[-1] if out.strip() else ""
    assert proc.returncode == 0 and last.startswith("{"), f"rehearsal failed ({proc.returncode}):\n{err[-4000:]}"
    rep = json.loads(last)
    assert "error" not in rep, (rep["error"], {k: v[-1500:] for k, v in rep.get("logs", {}).items()})
    return rep


def test_both_backfills_succeed_with_k_clips_per_run(report):
    assert report["ui_backfill"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), report["ui_backfill"]
    assert report["cli_backfill"]["rc"] == 0, report["cli_backfill"]
    runs = report["runs"]
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs
    ranges = sorted(tuple(r["range"]) for r in runs if r["range"][0])
    # 8 clips, K = 2: four range runs of two clips, none overlapping
    assert ranges == [(CLIPS[i], CLIPS[i + 1]) for i in range(0, 8, 2)], ranges


def test_every_asset_of_every_clip_materialized_exactly_once(report):
    for asset in ASSETS:
        assert report["materializations"][asset] == {c: 1 for c in CLIPS}, asset


def test_every_check_of_every_clip_resolved_once(report):
    for name in CHECKS:
        hist = report["checks"][name]
        assert sorted(p for p, _ in hist) == CLIPS, (name, hist)
        assert all(status in ("SUCCEEDED", "FAILED") for _, status in hist), (name, hist)  # none PLANNED


def test_rows_in_the_lake_and_artifacts_in_the_bucket_and_nothing_left_behind(report):
    assert report["clip_rows"] == {c: 1 for c in CLIPS}
    assert set(report["window_rows"]) == set(CLIPS) and all(n > 0 for n in report["window_rows"].values())
    assert report["trajectory_rows"] == {c: 1 for c in CLIPS}  # each camera path's summary row
    objects = report["objects"]  # (the lake's rows of tiny clips are inlined in its catalog: no Parquet needed)
    for c in CLIPS:
        mine = [o for o in objects if f"/{c}/" in o]
        for suffix in ("_rectified.mp4", "_intrinsics.json", "_emb.npy", "_temb.npy", "_ts.npy", "_segments.json",
                       "_trajectory.parquet", "_trajectory.png"):
            assert any(o.endswith(c + suffix) for o in mine), (c, suffix, mine)
        assert any("manifest" in o for o in mine), (c, mine)
        assert not [o for o in mine if "/raw/" in o], mine  # the raw clip is deleted once rectified
    assert report["stage_left"] == []  # the tasks' staging folder is empty


def test_the_encoder_is_loaded_once_per_actor(report):
    actors = report["actors"]
    assert isinstance(actors, list) and actors, actors
    loads = set(report["encoder_load_ids"].values())
    kills = sum(1 for k in ("actor", "rectify") if report["faults"].get(k))
    # one load per actor process: the first, and at most one more per node lost under it
    assert {a["load_id"] for a in actors} <= loads and len(loads) <= 1 + kills, (loads, actors)


def test_embeddings_and_rectified_clips_equal_the_single_process_path(report):
    ref = report["reference"]
    assert sorted(ref) == CLIPS
    for c, r in ref.items():
        assert r["rectified_in_bucket"] and r["same_mp4"], (c, r)  # rectification is reproducible
        assert r["windows"][0] == r["windows"][1] > 0, (c, r)
        assert r["max_abs_emb"] <= TOL and r["max_abs_temb"] <= TOL, (c, r)


def test_killed_raylets_runs_recover_and_nothing_is_duplicated(report):
    faults = report["faults"]
    assert "error" not in faults, faults
    for what in ("actor", "rectify"):
        kill = faults[what]
        assert kill is not None, f"no {what} node was caught at work"
        assert kill["recovery_s"] is not None, (what, kill)
        print(f"raylet of the {what} node SIGKILLed: the next clip was embedded {kill['recovery_s']} s later")
    # the runs the kills hit still succeeded, and exactly-once is asserted above on the same instance
    assert report["ui_backfill"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS") and report["cli_backfill"]["rc"] == 0


def test_every_process_was_stopped_by_pid(report):
    # the servers and Dagster's processes were stopped by their pids; only Ray's own detached processes
    # (job drivers, workers in sessions of their own) were left for the sweep of the rehearsal's namespace
    left = report["left_running"].values()
    assert not [c for c in left if any(s in c for s in ("postgres", "moto", "dagster-daemon", "dagster-webserver",
                                                       "code-server", "ray start", "gcs_server",
                                                       "raylet"))], report["left_running"]
    print("rehearsal phases (s):", report["phases"])

