"""The whole asset graph, materialized through Dagster on synthetic clips with the tiny model.

Real components throughout: H.265 tar shards read by egoclean.ingest.source, PyAV decoding and
x264 encoding, the tiny V-JEPA 2 (random weights) on the CPU, a real DuckDB file, an
ephemeral Dagster instance (and a SQLite one for the two-process test).
"""

import base64
import io
import json
import os
import re
import textwrap
import time
from pathlib import Path

import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from tests.support.dagster_helpers import run_scripts
from egoclean.store import Store
from egoclean_assets.assets import ALL_ASSETS
from egoclean_assets.checks import ALL_CHECKS
from egoclean_assets.definitions import build_definitions
from egoclean_assets.partitions import add_clip_partitions
from egoclean_assets.resources import (
    ExportResource,
    GroundTruthResource,
    RectifyResource,
    SourceResource,
    StoreResource,
    build_resources,
)

ROOT = Path(__file__).resolve().parents[2]
# 30 s at 160x96: long enough for a planted 8 s off-task span and the 3-window
# hysteresis, small enough that a clip runs through the graph in a few seconds.
DURATION, WIDTH, HEIGHT = 30.0, 160, 96


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    base = tmp_path_factory.mktemp("graph")
    summary = write_dataset(base / "source", SynthConfig(clips=2, duration_sec=DURATION, width=WIDTH, height=HEIGHT))
    model = save_tiny_model(base / "tiny-vjepa2")
    return {"base": base, "summary": summary, "model": str(model), "keys": [c["clip_id"] for c in summary["clips"]]}


def resources(dataset, root, db, *, ground_truth=None, rectify=None):
    env = {"EGOCLEAN_SOURCE": str(dataset["base"] / "source"), "EGOCLEAN_CACHE": str(dataset["base"] / "cache"),
           "EGOCLEAN_MODEL": dataset["model"], "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DB": str(db),
           "EGOCLEAN_DATA_ROOT": str(root), "EGOCLEAN_EXPORT": str(Path(root).parent / "lerobot"),
           "EGOCLEAN_GROUND_TRUTH": dataset["summary"]["ground_truth"], "EGOCLEAN_GROUND_TRUTH_SEED": "0"}
    overrides = {k: v for k, v in (("ground_truth", ground_truth), ("rectify", rectify)) if v is not None}
    return build_resources(env, **overrides)


def run_pipeline(res, instance, key, raise_on_error=True):
    job = build_definitions(res).resolve_job_def("clip_pipeline")
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=raise_on_error)


def materialization(result, asset):
    mats = [e.event_specific_data.materialization for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path[-1] == asset]
    assert len(mats) == 1, f"{asset}: {len(mats)} materializations"
    return mats[0].metadata


def checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def clip_dir(root, key):
    return Path(root) / "factory_001" / "worker_001" / key


@pytest.fixture(scope="module")
def graph(dataset):
    """Both clips through clip_pipeline once; later tests reuse the outputs."""
    root, db = dataset["base"] / "data", dataset["base"] / "egoclean.duckdb"
    instance = DagsterInstance.ephemeral()
    add_clip_partitions(instance, dataset["keys"])
    res = resources(dataset, root, db)
    results = {k: run_pipeline(res, instance, k) for k in dataset["keys"]}
    return {"root": root, "db": db, "instance": instance, "results": results, "res": res}


def test_whole_graph_finds_planted_anomalies_and_all_checks_pass(dataset, graph):
    truth = {c["clip_id"]: c["planted"] for c in dataset["summary"]["clips"]}
    for key, result in graph["results"].items():
        assert result.success
        evals = checks(result)
        assert set(evals) == {"matches_ground_truth", "same_frame_count", "embeddings_valid", "similarity_valid",
                              "poses_valid", "tracked_enough", "head_motion_plausible"}
        # head_motion_plausible only warns (a jump in a tracked path is worth a look, not a failed run)
        assert evals["head_motion_plausible"].severity.value == "WARN"
        assert all(e.passed for n, e in evals.items() if n != "head_motion_plausible"), {
            n: e.description for n, e in evals.items()}
        gt = evals["matches_ground_truth"].metadata
        assert len(gt["per_span_iou"].value) == len(truth[key]) >= 1
        assert all(iou >= 0.5 for iou in gt["per_span_iou"].value)

        seg = materialization(result, "anomaly_segments")
        assert seg["n_spans"].value == len(truth[key])
        assert "| 1 |" in seg["spans"].value and "random weights" in seg["model"].value
        assert 0 < seg["theta_on"].value < 2 and 0 < seg["theta_off"].value < 2
        raw = materialization(result, "raw_tar")
        assert raw["frames"].value == int(DURATION * 30) and raw["size"].value == f"{WIDTH}x{HEIGHT}"
        rect = materialization(result, "rectified_clip")
        assert rect["frames"].value == rect["raw_frames"].value == int(DURATION * 30)
        emb = materialization(result, "vjepa_embeddings")
        assert emb["windows"].value == (int(DURATION * 30) - 64) // 30 + 1
        traj = materialization(result, "camera_trajectory")
        assert traj["frames"].value == int(DURATION * 30) and 0.8 <= traj["tracked_fraction"].value <= 1
        row = Store(graph["db"]).trajectory(key)
        assert row["frames"] == int(DURATION * 30) and row["path"] == traj["path"].value
        assert row["tracked_fraction"] == pytest.approx(traj["tracked_fraction"].value, abs=1e-4)
        path_pic = materialization(result, "trajectory_plot")
        assert Path(path_pic["path"].value).is_file() and re.search(r"base64,", path_pic["trajectory"].value)
        assert path_pic["anomalous_spans"].value == seg["n_spans"].value
        pics = materialization(result, "diagnostics_plot")
        for name in ("diagnostics", "detection"):
            full = Path(pics[f"{name}_path"].value)
            assert full.is_file()
            # a small picture inline (base64 of ~20-30 KB), naming the full-size file
            assert re.search(r"data:image/(png|jpeg);base64,", pics[name].value)
            assert f"full size: `{full}`" in pics[name].value
            assert len(pics[name].value) < 60_000 < full.stat().st_size * 4 / 3
        # the pictures are the first entries, the detection strip wide enough for its legend (issue 18)
        # (after the IO manager's `location`, which Dagster lists before the asset's own entries)
        assert list(pics)[:3] == ["location", "detection", "diagnostics"]
        from PIL import Image

        data = re.search(r"base64,([A-Za-z0-9+/=]+)", pics["detection"].value).group(1)
        assert Image.open(io.BytesIO(base64.b64decode(data))).width == 1000


def test_every_clips_poses_in_one_sql_table(dataset, graph):
    """camera_trajectory writes every frame's pose to the store's poses table, beside the clip's summary."""
    db = Store(graph["db"])
    _, rows = db.query("SELECT clip_id, count(*), max(frame) FROM poses GROUP BY clip_id ORDER BY clip_id")
    assert rows == [(k, int(DURATION * 30), int(DURATION * 30) - 1) for k in sorted(dataset["keys"])]
    _, rows = db.query("SELECT count(*) FROM trajectories t JOIN poses p USING (clip_id) WHERE p.tracked")
    assert rows[0][0] == sum(db.trajectory(k)["tracked_frames"] for k in dataset["keys"])


def test_export_job_builds_the_dataset_from_materialized_clips(dataset, graph, tmp_path):
    for result in graph["results"].values():
        eps = materialization(result, "training_episodes")
        assert eps["episodes"].value >= 1 and "| 0 |" in eps["table"].value
        # floats for display: 4 significant digits, skipped spans to the millisecond (issue 18)
        period = eps["period_sec"].value
        assert isinstance(period, str) or period == float(f"{period:.4g}"), period
        for span in eps["skipped"].value:
            assert all(v == round(v, 3) for v in span.values() if isinstance(v, float)), span
    res = graph["res"] | {"export": ExportResource(out=str(tmp_path / "lerobot"))}
    job = build_definitions(res).resolve_job_def("export_dataset")
    for attempt in range(2):  # the second run finds every clip unchanged: nothing rewritten
        result = job.execute_in_process(instance=graph["instance"])
        assert result.success
        evals = checks(result)
        assert set(evals) == {"dataset_consistent", "frames_match_rectified"}
        assert all(e.passed for e in evals.values()), {n: e.description for n, e in evals.items()}
        assert evals["frames_match_rectified"].metadata["frames_checked"].value >= 1
        meta = materialization(result, "lerobot_dataset")
        total = sum(materialization(r, "training_episodes")["episodes"].value for r in graph["results"].values())
        assert meta["episodes"].value == total
        assert meta["episodes_replaced"].value == 0
        assert meta["episodes_added"].value == (total if attempt == 0 else 0)
        # the recipe in the UI: how to load it, and the dataset card (issue 18)
        assert f"LeRobotDataset('local/egoclean', root={str(tmp_path / 'lerobot')!r})" in \
            meta["load_with_lerobot"].value
        assert list(meta)[0] == "load_with_lerobot"
        card = meta["dataset_card"].value
        assert card.startswith("# EgoClean export") and "## Loading" in card and f"| {total} |" in card
    assert (tmp_path / "lerobot" / "meta" / "info.json").is_file()


def test_the_export_asset_shows_why_a_clip_has_no_cycle_cuts(dataset, graph, tmp_path):
    """A clip whose analysis cannot be read is exported in fixed-length pieces, and lerobot_dataset's
    metadata says why (`no_cycle_cuts`, beside `skipped`); the clips with their analysis say nothing."""
    from egoclean.core.layout import ClipLayout

    key = dataset["keys"][0]
    npz = Path(ClipLayout(key, str(clip_dir(graph["root"], key))).analysis + "_analysis.npz")
    kept = npz.read_bytes()
    res = graph["res"] | {"export": ExportResource(out=str(tmp_path / "lerobot"))}
    try:
        npz.write_bytes(kept[:300])  # cut inside the archive
        result = build_definitions(res).resolve_job_def("export_dataset").execute_in_process(
            instance=graph["instance"])
    finally:
        npz.write_bytes(kept)  # the other tests of this module read it
    assert result.success
    meta = materialization(result, "lerobot_dataset")
    why = meta["no_cycle_cuts"].value
    assert list(why) == [key] and f"{npz}: damaged or incomplete" in why[key], why
    assert "re-materialize similarity_matrix" in why[key] and meta["skipped"].value == {}


def test_rectified_clip_alone_after_raw_was_deleted_fetches_it_again(dataset, graph, tmp_path):
    key = dataset["keys"][0]
    d = clip_dir(graph["root"], key)
    assert not (d / "raw").exists()  # raw_tar was deleted after the first run
    result = materialize(ALL_ASSETS, instance=graph["instance"], resources=graph["res"], partition_key=key,
                         selection=AssetSelection.assets("rectified_clip"))
    assert result.success
    meta = materialization(result, "rectified_clip")
    assert meta["raw_refetched"].value is True and meta["frames"].value == int(DURATION * 30)
    assert not (d / "raw").exists() and not [p for p in d.iterdir() if p.name.startswith(".refetch-")]

    # when the source cannot give it back, the reason is the step failure's first line
    res = dict(graph["res"], source=SourceResource(url=str(tmp_path / "gone"), cache_dir=str(tmp_path / "c")))
    failed = materialize(ALL_ASSETS, instance=graph["instance"], resources=res, partition_key=key,
                         selection=AssetSelection.assets("rectified_clip"), raise_on_error=False)
    assert not failed.success
    failure = failed.failure_data_for_node("rectified_clip")
    assert failure.error.cause is None
    assert failure.user_failure_data.description.startswith(f"the raw clip of {key} (raw_tar) had been deleted")


def test_event_log_bytes_per_clip_stay_small(dataset, graph):
    """The pictures are stored once (materialization only) and reduced (was ~700 KB a run, ~520 KB of pictures)."""
    from dagster._serdes import serialize_value

    for result in graph["results"].values():
        records = graph["instance"].all_logs(result.run_id)
        total = sum(len(serialize_value(r)) for r in records)
        plot = [r for r in records if r.dagster_event and r.step_key == "diagnostics_plot"]
        outputs = [r for r in plot if r.dagster_event.event_type_value == "STEP_OUTPUT"]
        (mat,) = [r for r in plot if r.dagster_event.event_type_value == "ASSET_MATERIALIZATION"]
        assert outputs and all(len(serialize_value(r)) < 10_000 for r in outputs)  # no pictures in STEP_OUTPUT
        assert len(serialize_value(mat)) < 2 * 40_000 * 4 / 3 + 10_000  # two thumbnails of <= 40 KB, base64
        assert total < 350_000, total


def test_raw_intermediates_deleted_and_recorded_finals_kept(dataset, graph):
    for key, result in graph["results"].items():
        d = clip_dir(graph["root"], key)
        assert not (d / "raw").exists()
        deleted = materialization(result, "rectified_clip")["deleted_intermediates"].value
        assert sorted(Path(p).name for p in deleted) == sorted([f"{key}.json", f"{key}.mp4"])
        for name in ("_intrinsics.json", "_rectified.mp4", "_emb.npy", "_temb.npy", "_ts.npy", "_sim_mean.npy",
                     "_sim_temporal.npy", "_segments.json", "_diagnostics.png", "_detection.png"):
            assert (d / f"{key}{name}").is_file(), name
        intr = json.loads((d / f"{key}_intrinsics.json").read_text())
        assert intr["model"] == "pinhole" and intr["fisheye_source"]["model"] == "fisheye"
    # no temporary files or download caches left in the data root
    leftovers = [p for p in Path(graph["root"]).rglob("*") if p.name.startswith(".") or ".part-" in p.name]
    assert leftovers == []


def test_thresholds_shown_rounded_and_kept_in_full_in_the_data(dataset, graph):
    key = dataset["keys"][0]
    seg = materialization(graph["results"][key], "anomaly_segments")
    doc = json.loads((clip_dir(graph["root"], key) / f"{key}_segments.json").read_text())
    _, rows = Store(graph["db"]).query("SELECT theta_on, theta_off FROM segments WHERE clip_id = ? LIMIT 1", [key])
    for name, stored in zip(("theta_on", "theta_off"), rows[0]):
        shown = seg[name].value
        assert shown == float(f"{shown:.4g}"), f"{name} shown as {shown!r}"  # 4 significant digits
        assert doc[name] == stored != shown  # the JSON and DuckDB keep the full value
        assert abs(stored - shown) <= 1e-3 * abs(stored)


def test_duckdb_rows_present(dataset, graph):
    store = Store(graph["db"])
    _, rows = store.query("SELECT clip_id, count(*) FROM segments WHERE kind = 'anomaly' GROUP BY clip_id ORDER BY 1")
    planted = {c["clip_id"]: len(c["planted"]) for c in dataset["summary"]["clips"]}
    assert dict(rows) == planted
    _, rows = store.query("SELECT clip_id, n_frames, random_weights FROM clips ORDER BY 1")
    assert rows == [(k, int(DURATION * 30), True) for k in sorted(dataset["keys"])]
    _, rows = store.query("SELECT count(*) FROM ground_truth")
    assert rows[0][0] == sum(planted.values())


def test_rematerializing_a_partition_leaves_the_same_rows(dataset, graph):
    store = Store(graph["db"])
    sql = ("SELECT (SELECT count(*) FROM clips), (SELECT count(*) FROM segments), "
           "(SELECT count(*) FROM window_scores), (SELECT count(*) FROM ground_truth)")
    before = store.query(sql)[1]
    spans_sql = "SELECT start_sec, end_sec FROM segments WHERE clip_id = ? ORDER BY 1"
    key = dataset["keys"][0]
    spans_before = store.query(spans_sql, [key])[1]
    result = run_pipeline(graph["res"], graph["instance"], key)
    assert result.success
    assert store.query(sql)[1] == before
    assert store.query(spans_sql, [key])[1] == spans_before
    # the raw clip was fetched again for the re-run and deleted again after it
    assert len(materialization(result, "rectified_clip")["deleted_intermediates"].value) == 2
    assert not (clip_dir(graph["root"], key) / "raw").exists()


def test_downstream_failure_keeps_raw_clip_and_retry_deletes_it(dataset, tmp_path):
    key = dataset["keys"][0]
    instance = DagsterInstance.ephemeral()
    add_clip_partitions(instance, [key])
    root, db = tmp_path / "data", tmp_path / "db.duckdb"
    # an x264 preset that does not exist makes the encoder (rectified_clip) fail
    bad = resources(dataset, root, db, rectify=RectifyResource(preset="no-such-preset"))
    result = run_pipeline(bad, instance, key, raise_on_error=False)
    assert not result.success
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["rectified_clip"]
    raw = clip_dir(root, key) / "raw" / f"{key}.mp4"
    assert raw.is_file()
    assert not (clip_dir(root, key) / f"{key}_rectified.mp4").exists()

    good = resources(dataset, root, db)
    retry = materialize(ALL_ASSETS, instance=instance, resources=good, partition_key=key,
                        selection=AssetSelection.assets("rectified_clip"))
    assert retry.success
    assert not raw.exists()
    assert str(raw) in materialization(retry, "rectified_clip")["deleted_intermediates"].value


def test_busy_database_is_retried_by_dagster_naming_the_holder(dataset, graph, tmp_path):
    """A DuckDB session held open elsewhere: the attempt fails naming its pid, Dagster retries, the retry succeeds."""
    import threading

    from dagster import DagsterEventType, EventRecordsFilter
    from tests.store.test_store import Holder

    key = dataset["keys"][0]
    db = tmp_path / "held.duckdb"
    Store(db).init()
    res = resources(dataset, graph["root"], db)
    res["store"] = StoreResource(path=str(db), busy_timeout_sec=1.0)
    (tmp_path / "home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "home"))
    add_clip_partitions(instance, [key])
    retry = EventRecordsFilter(DagsterEventType.STEP_UP_FOR_RETRY)
    with Holder(db, tmp_path) as holder:
        def release_after_first_attempt():
            deadline = time.monotonic() + 120
            while not instance.get_event_records(retry) and time.monotonic() < deadline:
                time.sleep(0.2)
            holder.release()

        releaser = threading.Thread(target=release_after_first_attempt)
        releaser.start()
        result = materialize(ALL_ASSETS, instance=instance, resources=res, partition_key=key,
                             selection=AssetSelection.assets("anomaly_segments"), raise_on_error=False)
        releaser.join()
    assert result.success
    (up,) = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    warnings = [r.user_message for r in instance.all_logs(result.run_id) if "is busy" in r.user_message]
    assert warnings and f"process {holder.proc.pid} (" in warnings[0] and "attempt 1" in warnings[0]
    assert Store(db).query("SELECT count(*) FROM clips WHERE clip_id = ?", [key])[1] == [(1,)]


def _check_only(dataset, graph, key, ground_truth, tmp_path):
    """anomaly_segments again (from the stored embeddings) with its check, under other truth.

    Dagster 1.13 cannot run a partitioned check without an asset in the run, so the
    (cheap) detection step runs too, into a scratch database.
    """
    res = resources(dataset, graph["root"], tmp_path / "scratch.duckdb", ground_truth=ground_truth)
    result = materialize([*ALL_ASSETS, *ALL_CHECKS], instance=graph["instance"], resources=res, partition_key=key,
                         selection=AssetSelection.assets("anomaly_segments"), raise_on_error=False)
    (ev,) = result.get_asset_check_evaluations()
    assert ev.check_name == "matches_ground_truth"
    return ev


def test_ground_truth_of_another_clip_length_is_not_judged(dataset, graph, tmp_path):
    # The synthetic clip factory001_worker001_00001 shares its id with a seed clip that
    # was labelled on a 431 s video: the duration check refuses to judge it.
    key = "factory001_worker001_00001"
    assert key in dataset["keys"]
    ev = _check_only(dataset, graph, key, GroundTruthResource(include_seed=True), tmp_path)
    assert not ev.passed
    assert "labelled on a 431.0 s clip" in ev.description and "30.0 s long" in ev.description
    assert ev.metadata["result"].value == "duration mismatch"


def test_clip_without_ground_truth_passes_and_says_so(dataset, graph, tmp_path):
    ev = _check_only(dataset, graph, dataset["keys"][0], GroundTruthResource(include_seed=False), tmp_path)
    assert ev.passed
    assert ev.metadata["result"].value == "no ground truth for this clip"


def test_check_plot_view_and_detect_agree_on_the_ground_truth(dataset, graph, tmp_path, monkeypatch, capsys):
    """The disagreeing case of issue 11/12: a seed span the configured CSV replaces, the CSV
    configured under two spellings, a span listed twice, a source no longer configured,
    and a clip of another length. The check, the picture, detection_eval and
    `egoclean detect` must give one verdict from one set of spans."""
    from egoclean.cli import main as cli_main
    from egoclean.temporal.ground_truth import source_name
    from egoclean.core.ids import ClipId
    from egoclean.core.layout import ClipLayout

    key = "factory001_worker001_00001"  # synthetic, 30 s; the seed labels a 431 s clip of this id
    planted = [ln for ln in Path(dataset["summary"]["ground_truth"]).read_text().splitlines() if ln.startswith(key)]
    assert len(planted) == 1
    gt = tmp_path / "gt.csv"
    gt.write_text("clip_id,clip_duration_sec,start,end,label\n" + planted[0] + "\n" + planted[0] + "\n")
    extra = tmp_path / "extra.csv"
    extra.write_text(f"clip_id,clip_duration_sec,start,end,label\n{key},30,00:01,00:05,gone later\n")
    db = tmp_path / "agree.duckdb"
    monkeypatch.chdir(tmp_path)

    def run(truth):
        res = resources(dataset, graph["root"], db, ground_truth=truth)
        result = materialize([*ALL_ASSETS, *ALL_CHECKS], instance=graph["instance"], resources=res,
                             partition_key=key, selection=AssetSelection.assets("anomaly_segments", "diagnostics_plot"),
                             raise_on_error=False)
        (ev,) = result.get_asset_check_evaluations()
        return ev, materialization(result, "diagnostics_plot"), Store(db).detection_eval(key)

    def detect_report(env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        prefix = ClipLayout.under(graph["root"], ClipId.parse(key)).embeddings
        assert cli_main(["detect", prefix]) == 0
        return capsys.readouterr().out

    # 1. an earlier configuration with another source for the same clip
    run(GroundTruthResource(include_seed=True, paths=[str(extra), str(gt)]))
    # 2. now: the seed, and gt.csv under two spellings (extra.csv no longer configured)
    ev, plot, rows = run(GroundTruthResource(include_seed=True, paths=[str(gt), "./gt.csv"]))
    _, table = Store(db).query("SELECT source, count(*) FROM ground_truth WHERE clip_id = ? GROUP BY source", [key])
    assert table == [(source_name(gt), 1)]  # no seed rows, no extra.csv, counted once, the duplicate collapsed
    truth_rows = [r for r in rows if r["truth"] is not None]
    assert len(truth_rows) == 1 and ev.metadata["per_span_iou"].value == [round(truth_rows[0]["iou"], 4)]
    assert ev.passed == (all(r["status"] == "matched" for r in rows)) and ev.passed
    assert plot["ground_truth_spans_drawn"].value == 1
    report = detect_report({"EGOCLEAN_GROUND_TRUTH": f"{gt}:./gt.csv", "EGOCLEAN_GROUND_TRUTH_SEED": "1"})
    assert "(1/1 truth matched" in report and "PASS" in report

    # 3. the seed alone: a 30 s clip is not the 431 s clip it labels, for all four
    ev, plot, rows = run(GroundTruthResource(include_seed=True, paths=[]))
    assert not ev.passed and ev.metadata["result"].value == "duration mismatch"
    assert [r["status"] for r in rows] == ["not judged", "not judged"]
    assert plot["ground_truth_spans_drawn"].value == 0
    report = detect_report({"EGOCLEAN_GROUND_TRUTH": "", "EGOCLEAN_GROUND_TRUTH_SEED": "1"})
    assert "not the labelled video" in report and "PASS" not in report


WORKER = textwrap.dedent(
    """
    import sys
    from dagster import AssetSelection, DagsterInstance, materialize
    sys.path.insert(0, {repo!r})
    from tests.orchestration.test_assets_graph import resources
    from egoclean_assets.assets import ALL_ASSETS
    dataset = {dataset!r}
    dataset["base"] = __import__("pathlib").Path(dataset["base"])
    res = resources(dataset, {root!r}, {db!r})
    with DagsterInstance.get() as instance:
        for _ in range(2):
            r = materialize(ALL_ASSETS, instance=instance, resources=res, partition_key=sys.argv[1],
                            selection=AssetSelection.assets("anomaly_segments"))
            assert r.success
    print("ok", sys.argv[1])
    """
)


def test_two_partitions_at_once_in_separate_processes(dataset, graph, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster_home" / "dagster.yaml").read_text())
    db = tmp_path / "shared.duckdb"
    ds = {"base": str(dataset["base"]), "summary": dataset["summary"], "model": dataset["model"]}
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(repo=str(ROOT), dataset=ds, root=str(graph["root"]), db=str(db)))
    with DagsterInstance.from_config(str(home)) as inst:
        add_clip_partitions(inst, dataset["keys"])
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    outs = run_scripts(script, dataset["keys"], env, timeout=300)
    for rc, out in outs:
        assert rc == 0, out[-3000:]
        # a held lock is waited out by Store's retry, never surfaced as an error
        assert "StoreBusyError" not in out and "Traceback" not in out, out[-3000:]
    _, rows = Store(db).query("SELECT clip_id FROM clips ORDER BY 1")
    assert [r[0] for r in rows] == sorted(dataset["keys"])
