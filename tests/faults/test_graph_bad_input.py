"""Bad clips and calibrations inside the Dagster graph: the asset that owns the check fails
with a message naming the clip and the problem, nothing downstream runs, and what was
materialized before the failure stays.

The dataset is a local folder in the real layout (tests/support/hubstub.py make_tar) holding
real clips written with PyAV: an mpeg4 clip, a variable-frame-rate clip, a clip shorter
than one 64-frame window, a clip whose sidecar disagrees with its size, and a worker
whose intrinsics put the principal point outside the image.
"""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance

from egoclean.core.ids import ClipId
from egoclean.synth import synth_intrinsics
from egoclean_assets.definitions import build_definitions
from egoclean_assets.partitions import add_clip_partitions
from tests.support.hubstub import make_tar, sidecar

from .conftest import graph_resources, part_files, write_clip

W, H = 160, 96


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("bad-dataset")
    src, scratch = base / "source", base / "scratch"

    def member(key, **kw):
        p = write_clip(scratch / f"{key}.mp4", w=W, h=H, **kw)
        data = p.read_bytes()
        return [(f"{key}.mp4", data), (f"{key}.json", json.dumps(sidecar(key, len(data), width=W, height=H)).encode())]

    w1 = src / "factory_001" / "workers" / "worker_001"
    w1.mkdir(parents=True)
    (w1 / "intrinsics.json").write_text(json.dumps(synth_intrinsics(W, H)))
    vfr_pts = [i * 3000 + (2400 if i % 3 == 2 else 0) for i in range(100)]  # every third frame 0.8 frame late
    size_lie = member("factory001_worker001_00003", n=100, codec="libx265")
    size_lie[1] = (size_lie[1][0], json.dumps(sidecar("factory001_worker001_00003", len(size_lie[0][1]) + 1,
                                                      width=W, height=H)).encode())
    make_tar(w1 / "factory001_worker001_part00.tar",
             member("factory001_worker001_00000", n=100, codec="mpeg4")
             + member("factory001_worker001_00001", n=100, codec="libx264", pts=vfr_pts)
             + member("factory001_worker001_00002", n=40, codec="libx265")
             + size_lie)
    w2 = src / "factory_001" / "workers" / "worker_002"
    w2.mkdir(parents=True)
    (w2 / "intrinsics.json").write_text(json.dumps(synth_intrinsics(W, H) | {"cx": 5 * W}))
    make_tar(w2 / "factory001_worker002_part00.tar", member("factory001_worker002_00000", n=100, codec="libx265"))

    instance = DagsterInstance.ephemeral()
    keys = ["factory001_worker001_0000%d" % i for i in range(4)] + ["factory001_worker002_00000"]
    add_clip_partitions(instance, keys)
    root = base / "data"
    res = graph_resources(src, root, base / "db.duckdb", tiny_model, cache_dir=str(base / "cache"))
    job = build_definitions(res).resolve_job_def("clip_pipeline")
    results = {k: job.execute_in_process(partition_key=k, instance=instance, raise_on_error=False) for k in keys}
    return {"results": results, "root": root}


def outcome(result) -> tuple[str, str, set[str]]:
    (fail,) = [e for e in result.all_events if e.is_step_failure]
    done = {e.asset_key.path[-1] for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    return fail.step_key, fail.event_specific_data.error.to_string(), done


@pytest.mark.parametrize("key, step, needles, done", [
    ("factory001_worker001_00000", "raw_tar", ["factory001_worker001_00000.mp4", "codec 'mpeg4' is not H.264/H.265"],
     set()),
    ("factory001_worker001_00001", "rectified_clip", ["factory001_worker001_00001.mp4", "variable frame rate"],
     {"raw_tar", "intrinsics"}),
    ("factory001_worker001_00002", "vjepa_embeddings",
     ["factory001_worker001_00002_rectified.mp4", "40 frames", "shorter than one 64-frame window"],
     # the camera's path needs no 64-frame window: that branch (issue 17) still completes
     {"raw_tar", "intrinsics", "rectified_clip", "camera_trajectory"}),
    ("factory001_worker001_00003", "raw_tar", ["factory001_worker001_00003", "sidecar"], set()),
    ("factory001_worker002_00000", "intrinsics", ["worker_002", "cx"], {"raw_tar"}),
], ids=["mpeg4", "vfr", "too-short", "size-mismatch", "principal-point-outside"])
def test_bad_input_fails_at_the_owning_asset(bad_dataset, key, step, needles, done):
    result = bad_dataset["results"][key]
    assert not result.success
    failed, text, materialized = outcome(result)
    assert failed == step
    for n in needles:
        assert n in text, f"{n!r} not in {text[-1500:]}"
    assert materialized == done
    clip = ClipId.parse(key)
    clip_dir = bad_dataset["root"] / clip.factory_dir / clip.worker_dir / key
    manifests = {p.stem for p in (clip_dir / "_manifests").glob("*.json")} if clip_dir.exists() else set()
    assert manifests == done  # only completed assets are recorded; nothing downstream is
    assert part_files(bad_dataset["root"]) == []


@pytest.mark.parametrize("key", ["factory001_worker001_00000", "factory001_worker001_00001",
                                 "factory001_worker001_00002", "factory001_worker002_00000"])
def test_the_failure_dagster_shows_first_is_egocleans_one_line(bad_dataset, key):
    """The STEP_FAILURE and RUN_FAILURE errors start with EgoClean's line (was the third line, after
    Dagster's "Error occurred while executing op"); its traceback stays as the cause (issue 18)."""
    result = bad_dataset["results"][key]
    (step,) = [e for e in result.all_events if e.is_step_failure]
    (run,) = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
    line = step.event_specific_data.user_failure_data.description
    names_input = key in line or ClipId.parse(key).worker_path in line
    assert "\n" not in line and line.split(":")[0].endswith("Error") and names_input, line
    for error in (step.event_specific_data.error, run.event_specific_data.error):
        assert error.message.splitlines()[0] == f"dagster._core.definitions.events.Failure: {line}", error.message
        assert error.cause is not None and error.cause.cls_name == line.split(":")[0] and error.cause.stack
