"""Export to LeRobot v3.0: synthetic clips through the library, read back with pyarrow + PyAV only.

The format's required fields are checked against lerobot's own definitions (cited per
check; see egoclean/export/lerobot.py for the files at huggingface/lerobot). No lerobot import.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from egoclean.export import lerobot
from egoclean.core.errors import InvalidInputError
from egoclean.export import (
    META_PATH,
    SCORE_KEY,
    VIDEO_KEY,
    ExportOptions,
    export_dataset,
    export_from_store,
    select_clips,
    verify_frames,
)
from egoclean.core.ids import ClipId
from egoclean.store import Store

# 60 s at 160x96: room for a planted off-task span and several work cycles on both sides,
# small enough that two clips go through rectify + tiny-model embedding in seconds.
DURATION, WIDTH, HEIGHT, SEED = 60.0, 160, 96, 0


def planted_cycle(clip_id: str, seed: int = SEED) -> tuple[float, float]:
    """(period, phase0) of a synthetic clip's work cycle, drawn as egoclean.synth draws them."""
    c = ClipId.parse(clip_id)
    rng = np.random.default_rng([seed, int(c.factory), int(c.worker), int(c.index), 2])
    return float(rng.uniform(4.5, 5.5)), float(rng.uniform(0, 1))


def _materialize(base: Path, summary: dict, model: Path, db: Path) -> Path:
    """Each clip through fetch, rectify, embed, analyse, detect and the store (the graph's steps, no Dagster)."""
    from egoclean.temporal.analysis import analyse
    from egoclean.temporal.detection import detect
    from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder
    from egoclean.media.rectify import rectify_file
    from egoclean.ingest.source import open_source

    enc = load_encoder(EncoderConfig(model=str(model), device="cpu"))
    src = open_source(str(base / "source"))
    store = Store(db)
    root = base / "data"
    done = {}
    for c in summary["clips"]:
        cid = ClipId.parse(c["clip_id"])
        fetched = src.fetch_clip(cid, base / "raw", progress=False)
        d = root / cid.factory_dir / cid.worker_dir / cid.key
        out = d / f"{cid.key}_rectified.mp4"
        info = rectify_file(fetched.mp4_path, base / "source" / cid.worker_path / "intrinsics.json", out,
                            progress=False)
        emb = embed_video(out, enc, progress=False)
        emb.save(d / cid.key)
        analyse(emb).save(d / cid.key)
        det = detect(emb)
        row = {"clip_id": cid.key, "n_frames": info["frames"], "fps": info["fps"], "width": info["width"],
               "height": info["height"], "duration_sec": info["duration_sec"],
               "paths": {"rectified": str(out), "embeddings": str(d / f"{cid.key}_emb.npy")}}
        done[cid.key] = (row, det, enc.model_id, enc.random_weights)
        store.replace_clip(row, det, enc.model_id, random_weights=enc.random_weights)
    return done


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.embed.tiny_model import save_tiny_model

    base = tmp_path_factory.mktemp("export")
    summary = write_dataset(base / "source", SynthConfig(clips=2, duration_sec=DURATION, width=WIDTH,
                                                         height=HEIGHT, seed=SEED))
    model = save_tiny_model(base / "tiny")
    db = base / "egoclean.duckdb"
    done = _materialize(base, summary, model, db)
    return {"base": base, "summary": summary, "db": db, "store": Store(db), "done": done,
            "keys": [c["clip_id"] for c in summary["clips"]]}


@pytest.fixture(scope="module")
def dataset(clips):
    out = clips["base"] / "lerobot"
    report = export_from_store(clips["store"], out)
    return {"out": out, "report": report}


def _episodes(root: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in sorted((root / "meta/episodes").glob("*/*.parquet"))],
                     ignore_index=True)


def _data(root: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in sorted((root / "data").glob("*/*.parquet"))],
                     ignore_index=True)


def _frame_at(path: Path, t: float) -> np.ndarray:
    """The decoded frame presented at time t (seconds) in a video, by seeking (as a reader would)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        c.seek(int(t / s.time_base), stream=s, backward=True)
        for f in c.decode(s):
            if abs(float(f.pts * s.time_base) - t) < lerobot.TOLERANCE_S:
                return f.to_ndarray(format="rgb24")
            if float(f.pts * s.time_base) > t + lerobot.TOLERANCE_S:
                break
    raise AssertionError(f"{path}: no frame at {t:.4f} s")


def _source_frame(path: Path, i: int) -> np.ndarray:
    with av.open(str(path)) as c:
        for k, f in enumerate(c.decode(c.streams.video[0])):
            if k == i:
                return f.to_ndarray(format="rgb24")
    raise AssertionError(f"{path}: no frame {i}")


# ----------------------------------------------------------------------------- format


def test_info_json_has_every_required_key(dataset):
    root = dataset["out"]
    info = json.loads((root / "meta/info.json").read_text())
    # lerobot/datasets/utils.py DatasetInfo: the keys of meta/info.json, fps an int.
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
                "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path",
                "robot_type", "splits"):
        assert key in info, key
    assert info["codebase_version"] == "v3.0"
    assert isinstance(info["fps"], int) and info["fps"] == 30
    # utils.py DEFAULT_DATA_PATH / DEFAULT_VIDEO_PATH templates.
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    # utils/constants.py DEFAULT_FEATURES.
    feats = info["features"]
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        assert feats[key]["dtype"] == dtype and feats[key]["shape"] == [1]
    video = feats[VIDEO_KEY]
    # video_utils.get_video_info's keys.
    assert video["dtype"] == "video" and video["shape"] == [HEIGHT, WIDTH, 3]
    for key in ("video.height", "video.width", "video.codec", "video.pix_fmt", "video.fps", "video.channels",
                "has_audio"):
        assert key in video["info"], key
    assert video["info"]["video.codec"] == "h264" and video["info"]["video.fps"] == 30
    assert info["splits"] == {"train": f"0:{info['total_episodes']}"}


def test_episode_table_and_data_agree(dataset):
    root = dataset["out"]
    info = json.loads((root / "meta/info.json").read_text())
    eps, data = _episodes(root), _data(root)
    # dataset_writer.py / dataset_metadata.py: the episode columns.
    for col in ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index", f"videos/{VIDEO_KEY}/chunk_index", f"videos/{VIDEO_KEY}/file_index",
                f"videos/{VIDEO_KEY}/from_timestamp", f"videos/{VIDEO_KEY}/to_timestamp",
                "meta/episodes/chunk_index", "meta/episodes/file_index"):
        assert col in eps.columns, col
    assert len(eps) == info["total_episodes"] > 0 and len(data) == info["total_frames"]
    assert eps["episode_index"].tolist() == list(range(len(eps)))
    assert data["index"].tolist() == list(range(len(data)))
    for row in eps.to_dict("records"):
        rows = data.iloc[row["dataset_from_index"]:row["dataset_to_index"]]
        assert len(rows) == row["length"]
        assert (rows["episode_index"] == row["episode_index"]).all()
        assert rows["frame_index"].tolist() == list(range(row["length"]))
        np.testing.assert_allclose(rows["timestamp"], np.arange(row["length"]) / 30, atol=1e-4)
        assert row[f"videos/{VIDEO_KEY}/to_timestamp"] - row[f"videos/{VIDEO_KEY}/from_timestamp"] == \
            pytest.approx(row["length"] / 30)
        # per episode: where it came from and its camera
        assert row["egoclean/clip_id"] in {"factory001_worker001_00000", "factory001_worker001_00001"}
        assert row["egoclean/factory"] == "factory_001" and row["egoclean/worker"] == "worker_001"
        assert 0 <= row["egoclean/start_sec"] < row["egoclean/end_sec"] <= DURATION
        k = np.asarray(row["egoclean/camera_matrix"]).reshape(3, 3)
        assert k[0, 0] > 0 and k[2, 2] == 1 and 0 < k[0, 2] < WIDTH
        assert (row["egoclean/image_width"], row["egoclean/image_height"]) == (WIDTH, HEIGHT)
        assert bool(row["egoclean/random_weights"]) is True  # the tiny model
        assert len(row["egoclean/embedding"]) == 64  # the tiny model's hidden size
    assert np.isfinite(data[SCORE_KEY]).all()
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    # io_utils.write_tasks: indexed by task, with task_index.
    assert tasks.index.name == "task" and tasks["task_index"].tolist() == [0]
    assert set(data["task_index"]) == {0}


def test_stats_cover_every_feature_as_the_format_defines(dataset):
    root = dataset["out"]
    info = json.loads((root / "meta/info.json").read_text())
    stats = json.loads((root / "meta/stats.json").read_text())
    data = _data(root)
    for feat in info["features"]:
        # compute_stats.py: min, max, mean, std, count and the DEFAULT_QUANTILES.
        assert set(stats[feat]) >= {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}, feat
    img = stats[VIDEO_KEY]
    assert np.asarray(img["mean"]).shape == (3, 1, 1)  # per channel, (3, 1, 1)
    assert 0 <= np.min(img["min"]) <= np.max(img["max"]) <= 1  # scaled to [0, 1]
    # numeric features: the stats are those of the data columns
    for feat in ("frame_index", "index", SCORE_KEY):
        col = data[feat].to_numpy(dtype=np.float64)
        assert stats[feat]["min"] == pytest.approx([col.min()], rel=1e-5)
        assert stats[feat]["max"] == pytest.approx([col.max()], rel=1e-5)
        assert stats[feat]["mean"] == pytest.approx([col.mean()], rel=1e-5)
        assert stats[feat]["std"] == pytest.approx([col.std()], rel=1e-4)
        assert stats[feat]["count"] == [len(col)]


def test_validator_finds_nothing_and_catches_a_broken_copy(dataset, tmp_path):
    assert lerobot.validate(dataset["out"]) == []
    broken = tmp_path / "broken"
    shutil.copytree(dataset["out"], broken)
    info = json.loads((broken / "meta/info.json").read_text())
    info["total_frames"] += 1
    (broken / "meta/info.json").write_text(json.dumps(info))
    assert any("total_frames" in p or "info.json says" in p for p in lerobot.validate(broken))


def test_frames_equal_the_rectified_clip_at_sampled_times(clips, dataset):
    root = dataset["out"]
    eps = _episodes(root)
    rng = np.random.default_rng(0)
    checked = 0
    for row in eps.sample(n=min(4, len(eps)), random_state=0).to_dict("records"):
        video = root / lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY,
                                                 chunk_index=row[f"videos/{VIDEO_KEY}/chunk_index"],
                                                 file_index=row[f"videos/{VIDEO_KEY}/file_index"])
        src = Path(clips["store"].clip(row["egoclean/clip_id"])["paths"]["rectified"])
        for k in sorted(rng.choice(row["length"], size=2, replace=False).tolist()):
            got = _frame_at(video, row[f"videos/{VIDEO_KEY}/from_timestamp"] + k / 30)
            want = _source_frame(src, row["egoclean/start_frame"] + k)
            assert np.array_equal(got, want)  # stream copy: bit-identical decoded frames
            checked += 1
    assert checked >= 4
    # the library's check (what frames_match_rectified runs) agrees, and catches swapped sources
    srcs = {k: clips["store"].clip(k)["paths"]["rectified"] for k in clips["keys"]}
    assert verify_frames(root, srcs, samples=4)["mismatches"] == []
    swapped = dict(zip(clips["keys"], reversed(list(srcs.values()))))
    assert verify_frames(root, swapped, samples=4)["mismatches"]


def test_cuts_land_on_one_phase_of_the_planted_cycle(clips, dataset):
    eps = _episodes(dataset["out"])
    for key in clips["keys"]:
        period, phase0 = planted_cycle(key)
        rows = eps[eps["egoclean/clip_id"] == key]
        cyc = rows[rows["egoclean/cycle_index"] >= 0]
        assert len(cyc) >= 3, f"{key}: {len(cyc)} cycle episodes"
        assert cyc["egoclean/period_sec"].iloc[0] == pytest.approx(period, abs=0.1)
        # where each cut falls within the planted cycle (seconds after its phase 0)
        cuts = np.concatenate([cyc["egoclean/start_sec"], cyc["egoclean/end_sec"]])
        phase = ((cuts / period + phase0) % 1.0) * period
        ref = phase[0]
        dev = np.abs(((phase - ref) + period / 2) % period - period / 2)  # circular distance
        assert dev.max() <= 1.0, f"{key}: cut phases {np.round(phase, 2)} (period {period:.3f} s)"
        # whole cycles: every episode is n_cycles periods long
        lengths = (cyc["egoclean/end_sec"] - cyc["egoclean/start_sec"]) / cyc["egoclean/n_cycles"]
        np.testing.assert_allclose(lengths, period, atol=0.15)


def test_no_episode_overlaps_a_planted_anomaly(clips, dataset):
    eps = _episodes(dataset["out"])
    planted = {c["clip_id"]: c["planted"] for c in clips["summary"]["clips"]}
    for row in eps.to_dict("records"):
        for sp in planted[row["egoclean/clip_id"]]:
            overlap = min(row["egoclean/end_sec"], sp["end_sec"]) - max(row["egoclean/start_sec"], sp["start_sec"])
            assert overlap <= 0, (row["egoclean/clip_id"], row["egoclean/start_sec"], row["egoclean/end_sec"], sp)


def test_dataset_card_states_source_licence_counts(dataset):
    card = (dataset["out"] / "README.md").read_text()
    assert "builddotai/Egocentric-10K" in card and "Apache-2.0" in card
    assert "no language labels" in card and "random weights" in card
    info = json.loads((dataset["out"] / "meta/info.json").read_text())
    assert f"| 2 | {info['total_episodes']} | {info['total_frames']} |" in card


# ----------------------------------------------------------------------------- append, replace, atomic, bad input


def test_append_keeps_files_and_replace_does_not_duplicate(clips, tmp_path):
    out = tmp_path / "ds"
    store = clips["store"]
    first, second = clips["keys"]
    export_from_store(store, out, clips=[first])
    before = {p.relative_to(out): p.stat().st_ino for p in out.rglob("*") if p.is_file()}
    rep = export_from_store(store, out, clips=[second])
    assert rep.episodes_removed == 0 and rep.episodes_added > 0
    after = {p.relative_to(out): p.stat().st_ino for p in out.rglob("*") if p.is_file()}
    # data, episode and video files of the first export are the same files (hard links, untouched)
    for rel, ino in before.items():
        if rel.parts[0] in ("data", "videos") or rel.parts[:2] == ("meta", "episodes"):
            assert after.get(rel) == ino, rel
    n_before = len(_episodes(out))
    same = export_from_store(store, out, clips=[first])  # the same materialization: left alone
    assert same.unchanged == [first] and same.episodes_added == same.episodes_removed == 0
    assert {p.relative_to(out): p.stat().st_ino for p in out.rglob("*") if p.is_file()
            and p.parts[len(out.parts)] in ("data", "videos")} == {
        r: i for r, i in after.items() if r.parts[0] in ("data", "videos")}
    row, det, model, rw = clips["done"][first]
    store.replace_clip(row, det, model, random_weights=rw)  # re-materialized
    rep2 = export_from_store(store, out, clips=[first])  # replaces, never duplicates
    eps = _episodes(out)
    assert len(eps) == n_before and rep2.episodes_removed == rep2.episodes_added
    assert eps["episode_index"].tolist() == list(range(len(eps)))
    assert sorted(eps["egoclean/clip_id"].unique()) == sorted(clips["keys"])
    assert lerobot.validate(out) == []


def test_counters_of_an_export_that_both_replaces_a_clip_and_adds_one(clips, tmp_path):
    """episodes_new counts only the episodes of clips the dataset did not hold (issue 18: a re-export
    of one clip plus a new one reported every written episode as added)."""
    out = tmp_path / "ds"
    store = clips["store"]
    first, second = clips["keys"]
    export_from_store(store, out, clips=[first])
    n_first = len(_episodes(out))
    row, det, model, rw = clips["done"][first]
    store.replace_clip(row, det, model, random_weights=rw)  # re-materialized: re-exported below
    rep = export_from_store(store, out, clips=[first, second])
    eps = _episodes(out)
    n_second = int((eps["egoclean/clip_id"] == second).sum())
    assert n_first > 0 and n_second > 0
    assert rep.episodes_added == n_first + n_second and rep.episodes_removed == n_first
    assert rep.episodes_new == n_second and rep.episodes_rewritten == n_first
    assert rep.total_episodes == len(eps) == n_first + n_second
    assert f": {n_second} new, {n_first} re-exported in place of {n_first} removed;" in rep.summary()


def test_failed_export_leaves_previous_dataset_readable(clips, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    store = clips["store"]
    export_from_store(store, out, clips=[clips["keys"][0]])
    snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    import egoclean.export.directory as ex

    monkeypatch.setattr(ex, "swap", boom)
    with pytest.raises(OSError, match="disk full"):
        export_from_store(store, out, clips=[clips["keys"][1]])
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot
    assert lerobot.validate(out) == []
    assert not list(tmp_path.glob(".ds.export-*"))  # the staging directory is gone


def test_output_holding_another_dataset_is_refused(clips, tmp_path):
    other = tmp_path / "other"
    (other / "meta").mkdir(parents=True)
    (other / "meta/info.json").write_text(json.dumps({"codebase_version": "v3.0"}))
    with pytest.raises(InvalidInputError, match="another LeRobot dataset"):
        export_from_store(clips["store"], other)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an EgoClean export"):
        export_from_store(clips["store"], tmp_path / "files")
    assert (tmp_path / "files" / "notes.txt").read_text() == "mine"


def test_sql_selection_of_unknown_clips_is_an_error(clips, tmp_path):
    with pytest.raises(InvalidInputError, match="not in the database.*factory009_worker009_00009"):
        export_from_store(clips["store"], tmp_path / "ds", sql="SELECT 'factory009_worker009_00009' AS clip_id")
    assert not (tmp_path / "ds").exists()


def test_sql_selects_spans_and_bad_clips_are_skipped_with_a_reason(clips, tmp_path):
    store = clips["store"]
    first, second = clips["keys"]
    # only long work spans (the README's example), as a one-line export
    sql = "SELECT clip_id, start_sec, end_sec FROM segments WHERE kind = 'work' AND duration_sec > 20"
    rep = export_from_store(store, tmp_path / "long", sql=sql)
    eps = _episodes(tmp_path / "long")
    work = {k: [(s["start_sec"], s["end_sec"]) for s in store.segments(k, "work") if s["duration_sec"] > 20]
            for k in clips["keys"]}
    for row in eps.to_dict("records"):
        assert any(a - 1e-6 <= row["egoclean/start_sec"] < b for a, b in work[row["egoclean/clip_id"]])
    assert rep.episodes_added == len(eps) > 0
    # a clip whose video is missing and a clip whose spans are all too short: skipped, reasons recorded
    ins = select_clips(store, clips=[first, second])
    ins[0].video = tmp_path / "gone.mp4"
    ins[0].problem = f"rectified video missing from storage: {ins[0].video}"
    ins[1].work = [(10.0, 10.5)]
    ins[1].anomalies = []
    with pytest.raises(InvalidInputError, match="no episodes to write"):
        export_dataset(tmp_path / "bad", ins)
    assert not (tmp_path / "bad").exists()
    good = select_clips(store, clips=[second])
    export_dataset(tmp_path / "mixed", [ins[0]] + good)
    meta = json.loads((tmp_path / "mixed" / META_PATH).read_text())
    assert "missing from storage" in meta["skipped"][first]
    assert second in meta["clips"]


def test_reencode_scales_frames_and_camera_matrix(clips, dataset, tmp_path):
    out = tmp_path / "small"
    export_from_store(clips["store"], out, clips=[clips["keys"][1]], options=ExportOptions(resolution=48))
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"][VIDEO_KEY]["shape"] == [48, 80, 3]
    assert lerobot.validate(out) == []
    small = _episodes(out)
    full = _episodes(dataset["out"])
    full = full[full["egoclean/clip_id"] == clips["keys"][1]]
    assert small["egoclean/start_sec"].tolist() == full["egoclean/start_sec"].tolist()
    k_small = np.asarray(small["egoclean/camera_matrix"].iloc[0]).reshape(3, 3)
    k_full = np.asarray(full["egoclean/camera_matrix"].iloc[0]).reshape(3, 3)
    np.testing.assert_allclose(k_small[0, [0, 2]], k_full[0, [0, 2]] * 80 / WIDTH)
    np.testing.assert_allclose(k_small[1, [1, 2]], k_full[1, [1, 2]] * 48 / HEIGHT)
    # a re-encoded frame looks like the scaled source frame
    import cv2

    row = small.iloc[0]
    video = out / lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY, chunk_index=0, file_index=0)
    got = _frame_at(video, row[f"videos/{VIDEO_KEY}/from_timestamp"] + 5 / 30).astype(np.float64)
    src = Path(clips["store"].clip(clips["keys"][1])["paths"]["rectified"])
    want = cv2.resize(_source_frame(src, int(row["egoclean/start_frame"]) + 5), (80, 48),
                      interpolation=cv2.INTER_AREA).astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((got - want) ** 2))
    assert psnr > 28, psnr
    with pytest.raises(InvalidInputError, match="resolution"):
        export_from_store(clips["store"], out, clips=[clips["keys"][0]])  # same dir, other setting


def test_cli_export_one_line_and_bad_input_exit_2(clips, tmp_path, capsys):
    from egoclean.cli import main

    out = tmp_path / "cli"
    sql = "SELECT clip_id, start_sec, end_sec FROM segments WHERE kind = 'work' AND duration_sec > 20"
    assert main(["export", "--db", str(clips["db"]), "--out", str(out), "--sql", sql, "-q"]) == 0
    said = capsys.readouterr().out
    assert str(out) in said and "episode(s) written from 2 clip(s)" in said
    assert lerobot.validate(out) == []
    assert main(["export", "--db", str(clips["db"]), "--out", str(tmp_path / "x"), "-q",
                 "--clip", "factory009_worker009_00009"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "factory009_worker009_00009" in err[0] and "not in the database" in err[0]


def test_clips_in_a_remote_data_root_are_fetched_one_at_a_time(clips, dataset, tmp_path):
    import fsspec

    from egoclean.export.selection import _remote_files

    fs = fsspec.filesystem("memory")
    ins = select_clips(clips["store"], clips=[clips["keys"][1]])
    ci = ins[0]
    key = ci.clip_id
    base = f"memory://bucket/{key}"
    local_dir = ci.video.parent
    for p in local_dir.iterdir():
        if p.name.startswith(key) and p.suffix in (".mp4", ".json", ".npy", ".npz"):
            fs.pipe(f"/bucket/{key}/{p.name}", p.read_bytes())
    ci.video, ci.sim, ci.emb_path, ci.camera_matrix = None, None, None, None
    ci.remote = _remote_files(key, f"{base}/{key}_rectified.mp4", f"{base}/{key}_emb.npy")
    rep = export_dataset(tmp_path / "remote", [ci])
    assert lerobot.validate(tmp_path / "remote") == []
    got = _episodes(tmp_path / "remote")
    want = _episodes(dataset["out"])
    want = want[want["egoclean/clip_id"] == key]
    assert got["egoclean/start_sec"].tolist() == want["egoclean/start_sec"].tolist()  # same plan: sim fetched too
    assert got["egoclean/camera_matrix"].iloc[0].tolist() == want["egoclean/camera_matrix"].iloc[0].tolist()
    assert len(got["egoclean/embedding"].iloc[0]) == 64
    assert rep.episodes_added == len(want)
    assert not list(Path(tempfile.gettempdir()).glob("egoclean-export-*"))  # the downloads are gone
    # the frame check reads the source from the remote root too
    check = verify_frames(tmp_path / "remote", {key: f"{base}/{key}_rectified.mp4"}, samples=3)
    assert check["checked"] == 3 and check["mismatches"] == []
    fs.rm("/bucket", recursive=True)
    missing = select_clips(clips["store"], clips=[key])[0]
    missing.video, missing.remote = None, _remote_files(key, f"{base}/{key}_rectified.mp4", None)
    export_dataset(tmp_path / "mixed", [missing] + select_clips(clips["store"], clips=[clips["keys"][0]]))
    meta = json.loads((tmp_path / "mixed" / META_PATH).read_text())
    assert "missing from storage" in meta["skipped"][key]


def test_clips_in_an_s3_root_are_read_with_retries_and_the_callers_input_is_kept(clips, dataset, tmp_path, s3_env,
                                                                                  s3_server, monkeypatch):
    import boto3

    from egoclean.export.selection import _remote_files
    from tests.support.servers import FaultProxy

    ci = select_clips(clips["store"], clips=[clips["keys"][1]])[0]
    key = ci.clip_id
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="export-remote")
    for p in ci.video.parent.iterdir():
        if p.name.startswith(key) and p.suffix in (".mp4", ".json", ".npy", ".npz"):
            s3.upload_file(str(p), "export-remote", f"{key}/{p.name}")
    base = f"s3://export-remote/{key}"
    ci.video, ci.sim, ci.sim_ts, ci.emb_path, ci.camera_matrix = None, None, None, None, None
    ci.remote = _remote_files(key, f"{base}/{key}_rectified.mp4", f"{base}/{key}_emb.npy")
    remote = dict(ci.remote)
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.fail_gets = 2  # two reads answered with 500: retried by RemoteRoot, the export goes through
        rep = export_dataset(tmp_path / "s3", [ci])
        assert proxy.fail_gets == 0
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    want = _episodes(dataset["out"])
    want = want[want["egoclean/clip_id"] == key]
    got = _episodes(tmp_path / "s3")
    assert rep.episodes_added == len(want) and lerobot.validate(tmp_path / "s3") == []
    assert got["egoclean/start_sec"].tolist() == want["egoclean/start_sec"].tolist()
    assert got["egoclean/camera_matrix"].iloc[0].tolist() == want["egoclean/camera_matrix"].iloc[0].tolist()
    # the downloads were the export's own copy: the caller's ClipInput is as it was
    assert (ci.video, ci.sim, ci.sim_ts, ci.emb_path, ci.camera_matrix, ci.problem) == (None,) * 6
    assert ci.remote == remote
    # a clip whose files are gone is skipped with the reason; the caller's input still carries no problem
    s3.delete_object(Bucket="export-remote", Key=f"{key}/{key}_rectified.mp4")
    export_dataset(tmp_path / "gone", [ci] + select_clips(clips["store"], clips=[clips["keys"][0]]))
    meta = json.loads((tmp_path / "gone" / META_PATH).read_text())
    assert meta["skipped"][key] == f"rectified video missing from storage: {base}/{key}_rectified.mp4"
    assert ci.problem is None


# ------------------------------------------------------------------- camera state and action


@pytest.fixture(scope="module")
def posed(clips, tmp_path_factory):
    """An export of both clips with a camera trajectory in the store (the synthetic ground truth, with
    a tracking gap cut into the second clip's longest work span, the path after it not metric)."""
    import shutil

    from egoclean.motion.steps import Tracked
    from egoclean.motion.trajectory import Segment, Trajectory

    tmp_path = tmp_path_factory.mktemp("posed")
    db = tmp_path / "db.duckdb"
    shutil.copy(clips["db"], db)
    store = Store(db)
    truth, gap = {}, None
    for i, c in enumerate(clips["summary"]["clips"]):
        gt = Trajectory.load_tum(c["trajectory"])
        n = len(gt)
        tracked, seg = np.ones(n, bool), np.zeros(n, np.int32)
        segments = (Segment(0, 0, n - 1, True, 1.0),)
        if i == 1:  # a gap in the middle of the clip's longest work span; the path after it not metric
            work = max(((s["start_sec"], s["end_sec"]) for s in store.segments(c["clip_id"], "work")),
                       key=lambda w: w[1] - w[0])
            g0 = int((work[0] + work[1]) / 2 * 30)
            gap = (g0, g0 + 10)
            tracked[g0:g0 + 10] = False
            seg[g0:g0 + 10], seg[g0 + 10:] = -1, 1
            segments = (Segment(0, 0, g0 - 1, True, 1.0), Segment(1, g0 + 10, n - 1, False, 1.0))
        pos = np.where(tracked[:, None], gt.position, np.nan)
        quat = np.where(tracked[:, None], gt.quat, np.nan)
        traj = Trajectory(gt.t, pos, quat, tracked, seg, np.zeros(n, np.int32), segments, {})
        d = tmp_path / "data" / "factory_001" / "worker_001" / c["clip_id"]
        d.mkdir(parents=True)
        path = traj.save_parquet(d / f"{c['clip_id']}_trajectory.parquet")
        store.replace_trajectory(Tracked(c["clip_id"], str(path), traj.summary(), 30.0, 1.0).row(), traj.to_table())
        truth[c["clip_id"]] = gt
    out = tmp_path / "lerobot"
    report = export_from_store(store, out)
    return {"out": out, "report": report, "truth": truth, "gap": gap}


def test_episodes_carry_camera_state_and_action_and_never_span_a_tracking_gap(clips, posed):
    """With every clip's camera trajectory in the store (here the synthetic ground truth, with a
    tracking gap cut into the second clip), each frame gets observation.state (pose relative to
    its episode's first frame) and action (motion to the next frame in the current camera axes);
    names and units in info.json, stats in stats.json, metric per episode; the gap splits the
    work span it falls in and is listed with its reason in meta/egoclean.json."""
    out, report, truth, gap = posed["out"], posed["report"], posed["truth"], posed["gap"]
    assert report.episodes_added >= 4
    info = json.loads((out / "meta/info.json").read_text())
    st, ac = info["features"]["observation.state"], info["features"]["action"]
    assert (st["dtype"], st["shape"], st["names"]) == ("float32", [7], ["x", "y", "z", "qx", "qy", "qz", "qw"])
    assert (ac["dtype"], ac["shape"], ac["names"]) == ("float32", [6], ["dx", "dy", "dz", "rx", "ry", "rz"])
    assert st["egoclean/units"][:3] == ["length"] * 3 and ac["egoclean/units"][3:] == ["rad"] * 3
    stats = json.loads((out / "meta/stats.json").read_text())
    assert len(stats["observation.state"]["mean"]) == 7 and len(stats["action"]["std"]) == 6
    assert stats["observation.state"]["count"] == [info["total_frames"]]
    eps, data = _episodes(out), _data(out)
    assert lerobot.validate(out) == []
    for _, ep in eps.iterrows():
        key, a, n = ep["egoclean/clip_id"], int(ep["egoclean/start_frame"]), int(ep["length"])
        rows = data[data["episode_index"] == ep["episode_index"]].sort_values("frame_index")
        state = np.stack(rows["observation.state"].to_numpy())
        action = np.stack(rows["action"].to_numpy())
        assert state.shape == (n, 7) and action.shape == (n, 6)
        np.testing.assert_allclose(state[0], [0, 0, 0, 0, 0, 0, 1], atol=1e-6)
        gt = truth[key]
        R = gt.rotations()
        j = a + n // 2  # a frame inside: its pose relative to the episode's first frame
        np.testing.assert_allclose(state[n // 2, :3], R[a].T @ (gt.position[j] - gt.position[a]), atol=1e-5)
        rel = R[a].T @ R[j]
        q = state[n // 2, 3:].astype(np.float64)
        x, y, z, w = q
        Rq = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                       [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                       [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        np.testing.assert_allclose(Rq, rel, atol=1e-5)
        # the action of that frame: the next frame's position in this frame's camera axes
        np.testing.assert_allclose(action[n // 2, :3], R[j].T @ (gt.position[j + 1] - gt.position[j]), atol=1e-5)
        if key == clips["keys"][1]:
            assert a + n <= gap[0] or a >= gap[1], (a, n, gap)  # never across the gap
            assert bool(ep["egoclean/metric"]) == (a < gap[0])
        else:
            assert bool(ep["egoclean/metric"])
    sides = {a < gap[0] for a in eps[eps["egoclean/clip_id"] == clips["keys"][1]]["egoclean/start_frame"]}
    assert sides == {True, False}  # the work span holding the gap became episodes on both sides of it
    meta = json.loads((out / "meta/egoclean.json").read_text())
    skipped = meta["clips"][clips["keys"][1]]["skipped_spans"]
    assert {"start_sec": round(gap[0] / 30, 3), "end_sec": round(gap[1] / 30, 3),
            "reason": "tracking gap (no camera pose)"} in skipped


def test_a_clip_without_a_trajectory_leaves_state_and_action_out(dataset):
    """The clips exported in `dataset` have no camera trajectory: no state or action features."""
    import json

    features = json.loads((dataset["out"] / "meta/info.json").read_text())["features"]
    assert "observation.state" not in features and "action" not in features


def test_output_through_a_symlink_stays_a_link_and_every_export_works(clips, tmp_path):
    """`--out` a symbolic link to a dataset on another disk: the dataset is published at the link's target,
    the link stays a link, nothing `.previous` is left, and the next export adds to it (before: the link was
    replaced by a directory and every later export failed with `Cannot call rmtree on a symbolic link`)."""
    first, second = clips["keys"]
    target = tmp_path / "other-disk" / "ds"
    target.parent.mkdir()
    link = tmp_path / "here" / "ds"
    link.parent.mkdir()
    link.symlink_to(target, target_is_directory=True)
    export_from_store(clips["store"], link, clips=[first])
    export_from_store(clips["store"], link, clips=[second])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert set(_episodes(target)["egoclean/clip_id"]) == {first, second}
    assert lerobot.validate(target) == []
    leftovers = [p.name for d in (link.parent, target.parent) for p in d.iterdir() if p.name.startswith(".ds")]
    assert [n for n in leftovers if not n.endswith(".lock")] == [], leftovers


def test_output_at_the_root_is_one_line(clips, capsys):
    from egoclean.cli import main

    assert main(["export", "--db", str(clips["db"]), "--out", "/", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export output /: is the root of the file system" in err[0], err


def test_two_exports_into_one_dataset_at_once_keep_both(clips, tmp_path):
    """Two processes export different clips into one directory at once: both succeed and both clips'
    episodes are in the result (before: both said success and one clip's episodes were lost)."""
    import subprocess
    import sys

    out = tmp_path / "shared"
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-m", "egoclean.cli", "export", "--db", str(clips["db"]),
                               "--out", str(out), "--clip", k, "-q"], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for k in clips["keys"]]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert set(_episodes(out)["egoclean/clip_id"]) == set(clips["keys"])
    assert lerobot.validate(out) == []


def test_a_killed_exports_staging_folder_is_removed_by_the_next(clips, tmp_path):
    out = tmp_path / "ds"
    stale = tmp_path / ".ds.export-deadbeef"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "file-000.parquet").write_bytes(b"half written")
    export_from_store(clips["store"], out, clips=[clips["keys"][0]])
    assert not stale.exists() and lerobot.validate(out) == []


@pytest.mark.parametrize("start, end, problem", [
    ("NULL", "10.0", "start_sec is NULL"),
    ("'five'", "10.0", "start_sec='five' is not a number"),
    ("2.0", "'nan'::DOUBLE", "end_sec=nan is not a finite number"),
    ("12.0", "4.0", "start_sec=12 is not before end_sec=4"),
    ("3.0", "3.0", "start_sec=3 is not before end_sec=3"),
    ("0.0", "99999.0", "span 0-99999 s of clip {key} is outside the clip"),
    ("-1.0", "5.0", "span -1-5 s of clip {key} is outside the clip"),
])
def test_odd_spans_from_sql_are_one_clear_error(start, end, problem, clips, tmp_path):
    key = clips["keys"][0]
    sql = f"SELECT '{key}' AS clip_id, {start} AS start_sec, {end} AS end_sec"
    with pytest.raises(InvalidInputError) as e:
        export_from_store(clips["store"], tmp_path / "ds", sql=sql)
    msg = str(e.value)
    assert problem.format(key=key) in msg and key in msg, msg
    assert not (tmp_path / "ds").exists()


def test_repeated_and_overlapping_spans_export_each_frame_once(clips, tmp_path):
    key = clips["keys"][0]
    one = f"SELECT '{key}' AS clip_id, 2.0 AS start_sec, 14.0 AS end_sec"
    many = (f"SELECT '{key}' AS clip_id, 2.0 AS start_sec, 10.0 AS end_sec UNION ALL "
            f"SELECT '{key}', 2.0, 10.0 UNION ALL SELECT '{key}', 6.0, 14.0")
    a = export_from_store(clips["store"], tmp_path / "one", sql=one)
    b = export_from_store(clips["store"], tmp_path / "many", sql=many)
    assert b.total_frames == a.total_frames > 0
    starts = _data(tmp_path / "many")["timestamp"].to_numpy()
    assert len(starts) == a.total_frames


@pytest.mark.parametrize("content, problem", [
    ('{"K": [[[30, 0, 32]], [0, 30, 24], [0, 0, 1]]}', "K is not a 3x3 matrix of finite numbers"),
    ("[1, 2, 3]", "K is not a 3x3 matrix of finite numbers"),
    ('{"K": [[NaN, 0, 32], [0, 30, 24], [0, 0, 1]]}', "NaN is not a JSON number"),
    ('{"K": [[30, 0, 32], [0, 30, 24]]}', "K is not a 3x3 matrix of finite numbers"),
])
def test_bad_intrinsics_beside_a_clip_skip_it_with_the_reason(content, problem, clips, tmp_path):
    """Intrinsics beside a clip are read with the bounded JSON reader and K checked: the clip is skipped
    with the file and the problem recorded (before: a traceback, or a NaN camera matrix exported)."""
    from egoclean.export.selection import _clip_files

    first, second = clips["keys"]
    files = _clip_files(str(select_clips(clips["store"], clips=[first])[0].video))
    target = files["intrinsics"] if files["intrinsics"].is_file() else files["intrinsics_cli"]
    saved = target.read_bytes()
    try:
        target.write_text(content)
        ins = select_clips(clips["store"], clips=[first, second])
        assert ins[0].problem and str(target) in ins[0].problem and problem in ins[0].problem, ins[0].problem
        export_dataset(tmp_path / "ds", ins)
    finally:
        target.write_bytes(saved)
    meta = json.loads((tmp_path / "ds" / META_PATH).read_text())
    assert problem in meta["skipped"][first] and second in meta["clips"] and first not in meta["clips"]


def test_truncated_embeddings_or_a_short_video_skip_the_clip_with_the_reason(clips, tmp_path):
    first, second = clips["keys"]
    ins = select_clips(clips["store"], clips=[first, second])
    emb = tmp_path / ins[0].emb_path.name
    emb.write_bytes(ins[0].emb_path.read_bytes()[:200])  # cut inside the array
    ins[0].emb_path = emb
    export_dataset(tmp_path / "a", ins)
    meta = json.loads((tmp_path / "a" / META_PATH).read_text())
    assert "not a readable .npy array" in meta["skipped"][first] and second in meta["clips"]
    ins = select_clips(clips["store"], clips=[first, second])
    ins[0].duration_sec *= 2  # the store says twice as long as the rectified video is
    export_dataset(tmp_path / "b", ins)
    meta = json.loads((tmp_path / "b" / META_PATH).read_text())
    assert "the store records" in meta["skipped"][first] and "re-materialize rectified_clip" in meta["skipped"][first]


LEROBOT_PYTHON = "EGOCLEAN_LEROBOT_PYTHON"


def test_the_real_lerobot_loader_reads_state_action_video_and_stats(request):
    """lerobot's own LeRobotDataset loads the export with state and action (run by the interpreter in
    $EGOCLEAN_LEROBOT_PYTHON, an environment with lerobot installed, with its video backend or the one in
    $EGOCLEAN_LEROBOT_VIDEO_BACKEND; the README's export section says how to make one): every episode's
    first, middle and last frame read, observation.state (7,) and action (6,) equal to the parquet rows,
    names as in info.json, the video frame decoded at the exported size with the mean PyAV gets for that
    frame, and meta/stats.json loaded with a statistic of each feature's shape."""
    import subprocess

    python = os.environ.get(LEROBOT_PYTHON)
    if not python:
        pytest.skip(f"{LEROBOT_PYTHON} is not set: no interpreter with lerobot installed to load the export with "
                    "(README, section Export, says how to make one)")
    out = request.getfixturevalue("posed")["out"]  # after the check: no export built for a skipped test
    script = Path(__file__).with_name("lerobot_load.py")
    backend = [os.environ["EGOCLEAN_LEROBOT_VIDEO_BACKEND"]] if os.environ.get("EGOCLEAN_LEROBOT_VIDEO_BACKEND") else []
    proc = subprocess.run([python, str(script), str(out), *backend], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    info = json.loads((out / "meta/info.json").read_text())
    data = _data(out)
    assert (got["total_episodes"], got["total_frames"], got["num_frames"]) == \
        (info["total_episodes"], info["total_frames"], info["total_frames"])
    assert got["camera_keys"] == [VIDEO_KEY]
    for key in ("observation.state", "action"):
        assert got["features"][key] == {k: info["features"][key][k] for k in ("dtype", "shape", "names")}
    h, w = info["features"][VIDEO_KEY]["shape"][:2]
    eps = _episodes(out).set_index("episode_index")
    assert len(got["frames"]) >= 2 * info["total_episodes"]
    for f in got["frames"]:
        row = data[data["index"] == f["index"]].iloc[0]
        assert (f["episode_index"], f["frame_index"]) == (row["episode_index"], row["frame_index"])
        assert f["observation.state"]["shape"] == [7] and f["action"]["shape"] == [6]
        np.testing.assert_allclose(f["observation.state"]["values"], row["observation.state"], atol=1e-6)
        np.testing.assert_allclose(f["action"]["values"], row["action"], atol=1e-6)
        image = f[VIDEO_KEY]
        assert image["shape"] == [3, h, w] and image["dtype"] == "torch.float32"
        assert 0.0 <= image["min"] < image["max"] <= 1.0  # a decoded picture, not a blank
        # the same frame as PyAV decodes it from the episode's video file at its time there
        ep = eps.loc[f["episode_index"]]
        video = out / info["video_path"].format(
            video_key=VIDEO_KEY, chunk_index=int(ep[f"videos/{VIDEO_KEY}/chunk_index"]),
            file_index=int(ep[f"videos/{VIDEO_KEY}/file_index"]))
        ours = _frame_at(video, float(ep[f"videos/{VIDEO_KEY}/from_timestamp"]) + float(row["timestamp"]))
        assert abs(image["mean"] - ours.mean() / 255) < 2 / 255, (f["index"], image["mean"], ours.mean() / 255)
    stats = json.loads((out / "meta/stats.json").read_text())
    assert set(got["stats_shapes"]) == set(stats)
    assert got["stats_shapes"]["observation.state"]["mean"] == [7]
    assert got["stats_shapes"]["action"]["std"] == [6]
    assert got["stats_shapes"][VIDEO_KEY]["mean"] == [3, 1, 1]


def test_an_unreadable_analysis_is_recorded_as_why_a_clip_has_no_cycle_cuts(clips, dataset, tmp_path, capsys):
    """A clip whose analysis cannot be read is exported in fixed-length pieces, and why is recorded in
    meta/egoclean.json, the report and the CLI's output (before: the cycle cuts were lost silently; from a
    remote data root, a damaged analysis was a traceback)."""
    import fsspec

    from egoclean.cli import main
    from egoclean.export.selection import _remote_files

    key, other = clips["keys"]
    row, det, model, random_weights = clips["done"][key]
    src = Path(row["paths"]["rectified"]).parent
    here = tmp_path / "data" / key
    shutil.copytree(src, here)
    npz = here / f"{key}_analysis.npz"
    npz.write_bytes(npz.read_bytes()[:300])  # cut inside the archive
    db = tmp_path / "damaged.duckdb"
    paths = {"rectified": str(here / f"{key}_rectified.mp4"), "embeddings": str(here / f"{key}_emb.npy")}
    Store(db).replace_clip({**row, "paths": paths}, det, model, random_weights=random_weights)
    out = tmp_path / "out"
    assert main(["export", "--db", str(db), "--out", str(out), "-q"]) == 0
    said = capsys.readouterr().out
    meta = json.loads((out / META_PATH).read_text())
    why = meta["clips"][key]["no_cycle_cuts"]
    assert f"analysis {here / key}_analysis.npz: damaged or incomplete" in why
    assert "fixed-length pieces" in why and "re-materialize similarity_matrix" in why
    assert f"  no cycle cuts for {key}: {why}" in said.splitlines() and "1 clip(s) without cycle cuts" in said
    eps = _episodes(out)
    assert len(eps) and (eps["egoclean/n_cycles"] == 0).all()  # fixed-length pieces
    # the same clip with its analysis intact is cut at its cycles and records nothing
    good = json.loads((dataset["out"] / META_PATH).read_text())
    assert good["clips"][key]["cycle"] is not None and "no_cycle_cuts" not in good["clips"][key]
    assert dataset["report"].no_cycle_cuts == {}
    # from a remote data root: the damaged analysis downloaded, the clip exported, the reason recorded
    fs = fsspec.filesystem("memory")
    base = f"memory://cycles/{key}"
    for p in here.iterdir():
        fs.pipe(f"/cycles/{key}/{p.name}", p.read_bytes())
    ci = select_clips(clips["store"], clips=[key])[0]
    ci.video, ci.sim, ci.emb_path, ci.camera_matrix = None, None, None, None
    ci.remote = _remote_files(key, f"{base}/{key}_rectified.mp4", f"{base}/{key}_emb.npy")
    rep = export_dataset(tmp_path / "remote", [ci])
    assert "_analysis.npz: damaged or incomplete" in rep.no_cycle_cuts[key] and rep.episodes_added == len(eps)
    fs.rm(f"/cycles/{key}/{key}_analysis.npz")
    ci = select_clips(clips["store"], clips=[key])[0]
    ci.video, ci.remote = None, _remote_files(key, f"{base}/{key}_rectified.mp4", None)
    rep = export_dataset(tmp_path / "remote2", [ci])
    assert rep.no_cycle_cuts[key].startswith(f"analysis missing from storage: {base}/{key}_analysis.npz;")
    fs.rm("/cycles", recursive=True)
