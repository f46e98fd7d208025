"""Tests for egoclean.store: real DuckDB files in tmp_path, real lock-holding processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from egoclean.cli import main
from egoclean.temporal.detection import Detection, Span, detect, ema
from egoclean.embed.embeddings import Embeddings
from egoclean.core.errors import ClipIdError, InvalidInputError, StoreBusyError
from egoclean.temporal.evaluation import GroundTruthSpan as Truth
from egoclean.temporal.evaluation import evaluate
from egoclean.store import lock_holder, QueryError, Store, StoreMissingError, format_table

ROOT = Path(__file__).resolve().parents[2]
CLIP_A = "factory001_worker001_00001"
CLIP_B = "factory001_worker001_00002"
CLIP_C = "factory002_worker007_00010"


def make_det(n: int = 60, spans=((10.0, 20.0),), work=((0.0, 10.0),), seed: int = 0) -> Detection:
    """A real Detection with exactly these spans (for cases that need exact times)."""
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.float64)
    score = rng.random(n)
    on = np.zeros(n, bool)
    for s, e in spans:
        on[(ts >= s) & (ts < e)] = True
    return Detection(
        ts=ts, score=score, smoothed=ema(score, 0.15), theta_on=0.6, theta_off=0.4, median=0.5, is_anomaly=on,
        spans=[Span(s, e, 0.9) for s, e in spans], work_spans=[Span(s, e) for s, e in work],
    )


def detect_synthetic(n: int = 60, anomaly: tuple[int, int] = (20, 35), seed: int = 0) -> Detection:
    """egoclean.temporal.detection.detect on synthetic embeddings with one planted odd stretch."""
    rng = np.random.default_rng(seed)
    base, odd = rng.normal(size=(2, 4, 16))
    temb = base + 0.3 * rng.normal(size=(n, 4, 16))
    a, b = anomaly
    temb[a:b] = odd + 0.3 * rng.normal(size=(b - a, 4, 16))
    emb = Embeddings(temb.mean(axis=1).astype(np.float32), temb.astype(np.float32), np.arange(n, dtype=np.float64))
    return detect(emb)


def clip_info(cid: str, n: int = 60) -> dict:
    return {
        "clip_id": cid, "n_frames": n * 30 + 34, "fps": 30.0, "width": 480, "height": 270,
        "duration_sec": (n * 30 + 34) / 30.0,
        "paths": {"rectified": f"/data/{cid}.mp4", "embeddings": f"/data/{cid}"},
        "random_weights": True,
    }


def counts(db: Path, cid: str | None = None) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        where = "" if cid is None else f" WHERE clip_id = '{cid}'"
        return {t: con.execute(f"SELECT count(*) FROM {t}{where}").fetchone()[0]
                for t in ("clips", "segments", "window_scores")}
    finally:
        con.close()


# -- a real second process that holds the write lock -------------------------------

HOLDER = textwrap.dedent(
    """
    import pathlib, sys, time
    import duckdb
    db, ready, release = sys.argv[1:4]
    con = duckdb.connect(db)
    pathlib.Path(ready).write_text("holding")
    deadline = time.monotonic() + 60
    while not pathlib.Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    con.close()
    """
)


class Holder:
    """A subprocess holding `db` open for writing until `release()` (signals via files)."""

    def __init__(self, db: Path, tmp: Path):
        self.ready, self.release_file = tmp / "holder.ready", tmp / "holder.release"
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(self.ready), str(self.release_file)])
        for _ in range(3000):  # up to ~60 s for the interpreter to start
            if self.ready.exists() or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        assert self.ready.exists(), "lock holder did not start"

    def release(self) -> None:
        self.release_file.write_text("go")

    def __enter__(self) -> "Holder":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        assert self.proc.wait(timeout=60) == 0


# -- schema -------------------------------------------------------------------------


def test_init_creates_schema_idempotently(tmp_path):
    db = tmp_path / "sub" / "egoclean.duckdb"
    st = Store(db)
    assert st.init() == db and st.init() == db
    con = duckdb.connect(str(db), read_only=True)
    tables = {r[0]: r[1]
              for r in con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall()}
    cols = {
        t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()]
        for t in ("clips", "segments", "window_scores", "ground_truth")
    }
    con.close()
    assert tables["detection_eval"] == "VIEW"
    assert {"clips", "segments", "window_scores", "ground_truth"} <= set(tables)
    assert cols["clips"] == ["clip_id", "factory", "worker", "n_frames", "fps", "width", "height", "duration_sec",
                             "paths", "model", "random_weights", "materialized_at"]
    assert cols["segments"] == ["clip_id", "factory", "worker", "kind", "start_sec", "end_sec", "duration_sec",
                                "peak_score", "theta_on", "theta_off", "model", "materialized_at"]
    assert cols["window_scores"] == ["clip_id", "t_sec", "score", "smoothed", "is_anomaly"]
    assert cols["ground_truth"] == ["clip_id", "clip_duration_sec", "start_sec", "end_sec", "label", "source"]


# -- replace_clip ---------------------------------------------------------------------


def test_replace_clip_writes_rows_and_reads_back(tmp_path):
    st = Store(tmp_path / "e.duckdb")
    det = make_det(spans=((10.0, 20.0), (30.0, 45.5)))
    out = st.replace_clip(clip_info(CLIP_C), det, "tiny-model")
    assert out == {"clip_id": CLIP_C, "segments": 3, "anomaly_spans": 2, "work_spans": 1, "window_scores": 60}

    row = st.clip(CLIP_C)
    assert row["factory"] == "factory_002" and row["worker"] == "worker_007"
    assert row["paths"] == {"rectified": f"/data/{CLIP_C}.mp4", "embeddings": f"/data/{CLIP_C}"}
    assert row["model"] == "tiny-model" and row["random_weights"] is True and row["n_frames"] == 1834
    assert st.clip(CLIP_A) is None

    segs = st.segments(CLIP_C)
    assert [(s["kind"], s["start_sec"], s["end_sec"], s["duration_sec"]) for s in segs] == [
        ("work", 0.0, 10.0, 10.0), ("anomaly", 10.0, 20.0, 10.0), ("anomaly", 30.0, 45.5, 15.5)]
    assert all(s["theta_on"] == 0.6 and s["theta_off"] == 0.4 for s in segs)
    assert len(st.segments(CLIP_C, kind="anomaly")) == 2

    ws = st.window_scores(CLIP_C)
    assert np.allclose([w["t_sec"] for w in ws], det.ts)
    assert np.allclose([w["score"] for w in ws], det.score)
    assert np.allclose([w["smoothed"] for w in ws], det.smoothed)
    assert [w["is_anomaly"] for w in ws] == det.is_anomaly.tolist()
    # the map column is pleasant to query
    cols, rows = st.query("SELECT paths['rectified'] FROM clips WHERE clip_id = ?", [CLIP_C])
    assert rows == [(f"/data/{CLIP_C}.mp4",)]


def test_replace_twice_gives_the_same_rows_not_duplicates(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    det = detect_synthetic()
    assert len(det.spans) == 1 and len(det.work_spans) == 2  # the planted stretch is found
    st.replace_clip(clip_info(CLIP_A), det, "m")
    first = (st.segments(CLIP_A), st.window_scores(CLIP_A))
    st.replace_clip(clip_info(CLIP_A), det, "m")
    second = (st.segments(CLIP_A), st.window_scores(CLIP_A))
    assert counts(db) == {"clips": 1, "segments": 3, "window_scores": 60}
    anomaly = [s for s in second[0] if s["kind"] == "anomaly"]
    assert [(a["start_sec"], a["end_sec"], a["peak_score"]) for a in anomaly] == [
        (sp.start_sec, sp.end_sec, sp.peak_score) for sp in det.spans]
    assert [w["is_anomaly"] for w in second[1]] == det.is_anomaly.tolist()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "materialized_at"} for r in rows]  # noqa: E731
    assert strip(first[0]) == strip(second[0]) and first[1] == second[1]


def test_replacing_one_clip_leaves_others_intact(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    st.replace_clip(clip_info(CLIP_A), detect_synthetic(seed=1), "m")
    st.replace_clip(clip_info(CLIP_B), detect_synthetic(seed=2, anomaly=(5, 15)), "m")
    before_b = (st.clip(CLIP_B), st.segments(CLIP_B), st.window_scores(CLIP_B))
    st.replace_clip(clip_info(CLIP_A, n=30), make_det(n=30, spans=(), work=(), seed=3), "other-model")
    assert counts(db, CLIP_A) == {"clips": 1, "segments": 0, "window_scores": 30}
    assert st.clip(CLIP_A)["model"] == "other-model"
    assert (st.clip(CLIP_B), st.segments(CLIP_B), st.window_scores(CLIP_B)) == before_b
    st.delete_clip(CLIP_A)
    assert counts(db, CLIP_A) == {"clips": 0, "segments": 0, "window_scores": 0}
    assert counts(db, CLIP_B)["window_scores"] == 60


def test_bad_input_is_refused_and_nothing_is_lost(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    st.replace_clip(clip_info(CLIP_A), make_det(), "m")
    before = counts(db)
    with pytest.raises(ClipIdError, match="factory1_worker1"):
        st.replace_clip({"clip_id": "factory1_worker1"}, make_det(), "m")
    bad = make_det()
    bad.score = bad.score[:-5]
    with pytest.raises(InvalidInputError, match=f"{CLIP_A}.*score"):
        st.replace_clip(clip_info(CLIP_A), bad, "m")
    backwards = make_det(spans=((20.0, 10.0),))
    with pytest.raises(InvalidInputError, match="20.0..10.0"):
        st.replace_clip(clip_info(CLIP_A), backwards, "m")
    assert counts(db) == before


def test_failed_transaction_rolls_back_the_whole_clip(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    st.replace_clip(clip_info(CLIP_A), make_det(), "m")
    before = (st.segments(CLIP_A), st.window_scores(CLIP_A))

    class Boom(Exception):
        pass

    def fail_after_delete(con):
        con.execute("DELETE FROM window_scores WHERE clip_id = ?", [CLIP_A])
        raise Boom()

    with pytest.raises(Boom):
        st._write(fail_after_delete)
    assert (st.segments(CLIP_A), st.window_scores(CLIP_A)) == before


# -- ground truth and detection_eval ---------------------------------------------------


def test_ground_truth_is_replaced_per_source(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    seed = [Truth(CLIP_A, 431, 208, 262, "material handling"), Truth(CLIP_A, 431, 420, 433, "ending work")]
    assert st.replace_ground_truth(seed, "seed") == 2
    assert st.replace_ground_truth(seed, "seed") == 2
    st.replace_ground_truth([Truth(CLIP_B, 1200, 127, 174, "not working")], "mine.csv")
    _, rows = st.query("SELECT source, count(*) FROM ground_truth GROUP BY source ORDER BY source")
    assert rows == [("mine.csv", 1), ("seed", 2)]
    st.replace_ground_truth(seed[:1], "seed")
    _, rows = st.query("SELECT source, label FROM ground_truth ORDER BY source")
    assert rows == [("mine.csv", "not working"), ("seed", "material handling")]
    with pytest.raises(InvalidInputError, match="300.0..200.0"):
        st.replace_ground_truth([Truth(CLIP_A, 431, 300, 200, "x")], "seed")
    with pytest.raises(ClipIdError):
        st.replace_ground_truth([Truth("clip1", 431, 1, 2, "x")], "seed")
    assert st.query("SELECT count(*) FROM ground_truth")[1] == [(2,)]


def test_ground_truth_csv_loads_under_its_path(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("clip_id,clip_duration_sec,start,end,label\n"
                   f"{CLIP_B},1200,02:07,02:54,not working\n{CLIP_B},1200,16:09,17:03,gets up\n")
    st = Store(tmp_path / "e.duckdb")
    assert st.load_ground_truth_csv(csv) == 2
    assert st.load_ground_truth_csv(csv) == 2
    _, rows = st.query("SELECT clip_id, clip_duration_sec, start_sec, end_sec, label, source FROM ground_truth"
                       " ORDER BY start_sec")
    assert rows == [(CLIP_B, 1200.0, 127.0, 174.0, "not working", str(csv)),
                    (CLIP_B, 1200.0, 969.0, 1023.0, "gets up", str(csv))]


def test_seed_ground_truth_and_the_reference_run_pass(tmp_path):
    """The packaged seed spans, scored against the reference run's detections (SPEC table)."""
    st = Store(tmp_path / "e.duckdb")
    assert st.load_ground_truth_csv() == 4
    _, rows = st.query("SELECT DISTINCT source FROM ground_truth")
    assert rows == [("seed",)]
    reference = {CLIP_A: ((209, 264), (416, 431)), CLIP_B: ((125, 182), (974, 1027))}
    # clips as long as the ones labelled (431 s and 1200 s): another length is not judged
    st.replace_clip(clip_info(CLIP_A, n=1199), make_det(n=1200, spans=reference[CLIP_A], work=()), "vjepa2")
    assert {r["status"] for r in st.detection_eval(CLIP_A)} == {"not judged"}
    for cid, n in ((CLIP_A, 430), (CLIP_B, 1199)):
        st.replace_clip(clip_info(cid, n=n), make_det(n=1200, spans=reference[cid], work=()), "vjepa2")
    got = st.detection_eval()
    assert [(r["clip_id"], r["truth"], r["detected"], r["status"]) for r in got] == [
        (CLIP_A, "03:28-04:22", "03:29-04:24", "matched"),
        (CLIP_A, "07:00-07:13", "06:56-07:11", "matched"),
        (CLIP_B, "02:07-02:54", "02:05-03:02", "matched"),
        (CLIP_B, "16:09-17:03", "16:14-17:07", "matched"),
    ]
    assert all(r["iou"] >= 0.5 for r in got)


def test_detection_eval_matches_by_iou(tmp_path):
    st = Store(tmp_path / "e.duckdb")
    # Clip A: truth 100-150 and 300-350; detections 100-140 (IoU 40/50 = 0.8),
    # 335-350 (IoU 15/50 = 0.3) and 500-520 (no truth anywhere near).
    st.replace_clip(clip_info(CLIP_A, n=600), make_det(n=600, spans=((100, 140), (335, 350), (500, 520))), "m")
    # Clip B has detections but no ground truth: not part of the evaluation.
    st.replace_clip(clip_info(CLIP_B), make_det(spans=((10, 20),)), "m")
    # Clip C has ground truth and no detections at all.
    truth_a = [Truth(CLIP_A, 600, 100, 150, "walks away"), Truth(CLIP_A, 600, 300, 350, "talks")]
    st.replace_ground_truth(truth_a + [Truth(CLIP_C, 90, 30, 60, "gets up")], "seed")

    cols, rows = st.query("SELECT * FROM detection_eval")
    got = [dict(zip(cols, r)) for r in rows]
    assert [(r["clip_id"], r["status"], r["truth"], r["detected"]) for r in got] == [
        (CLIP_A, "matched", "01:40-02:30", "01:40-02:20"),
        (CLIP_A, "missed", "05:00-05:50", "05:35-05:50"),
        (CLIP_A, "false positive", None, "05:35-05:50"),
        (CLIP_A, "false positive", None, "08:20-08:40"),
        (CLIP_C, "missed", "00:30-01:00", None),
    ]
    m, missed, fp03, fp0, none = got
    assert m["iou"] == pytest.approx(0.8) and m["matched"] is True
    assert (m["start_error_sec"], m["end_error_sec"]) == (0.0, -10.0) and m["label"] == "walks away"
    assert missed["iou"] == pytest.approx(0.3) and missed["matched"] is False
    assert (missed["start_error_sec"], missed["end_error_sec"]) == (35.0, 0.0)
    assert fp03["iou"] == pytest.approx(0.3) and fp03["matched"] is False and fp03["label"] is None
    assert fp0["iou"] == 0.0 and (fp0["det_start_sec"], fp0["det_end_sec"]) == (500.0, 520.0)
    assert none["iou"] is None and none["matched"] is False and none["det_start_sec"] is None
    assert st.detection_eval(CLIP_C) == [none]

    # The view agrees with the library's evaluation of the same spans.
    ev = evaluate([Span(s["start_sec"], s["end_sec"]) for s in st.segments(CLIP_A, kind="anomaly")], truth_a)
    assert [t.matched for t in ev.truth] == [m["matched"], missed["matched"]]
    assert [t.best_iou for t in ev.truth] == pytest.approx([m["iou"], missed["iou"]])
    assert [(d["start_sec"], d["end_sec"]) for d in ev.unmatched_detections] == [
        (fp03["det_start_sec"], fp03["det_end_sec"]), (fp0["det_start_sec"], fp0["det_end_sec"])]

    # A better detection replaces the clip's rows; the view follows.
    st.replace_clip(clip_info(CLIP_A, n=600), make_det(n=600, spans=((101, 150), (302, 352))), "m")
    assert [(r["status"], r["matched"]) for r in st.detection_eval(CLIP_A)] == [("matched", True), ("matched", True)]


# -- read-only queries ------------------------------------------------------------------


def test_query_is_read_only(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    st.replace_clip(clip_info(CLIP_A), make_det(), "m")
    for sql in ("DELETE FROM segments", "INSERT INTO clips (clip_id, factory, worker) VALUES ('x', 'f', 'w')",
                "DROP TABLE window_scores", "CREATE TABLE t (a INT)"):
        with pytest.raises(QueryError, match="read-only") as e:
            st.query(sql)
        assert sql[:20] in str(e.value) and str(db) in str(e.value)
    assert counts(db) == {"clips": 1, "segments": 2, "window_scores": 60}


def test_query_errors_and_missing_db(tmp_path):
    db = tmp_path / "e.duckdb"
    st = Store(db)
    with pytest.raises(StoreMissingError, match="does not exist.*materialize"):
        st.query("SELECT 1")
    assert st.clip(CLIP_A) is None and st.segments(CLIP_A) == [] and not db.exists()
    st.init()
    with pytest.raises(QueryError, match=r"Parser Error.*in query: SELEC clip_id") as e:
        st.query("SELEC clip_id FROM clips")
    assert "\n" not in str(e.value)
    with pytest.raises(QueryError, match="nope"):
        st.query("SELECT nope FROM clips")
    assert st.query("SELECT count(*) AS n FROM clips") == (["n"], [(0,)])


def test_format_table_aligns_and_counts():
    text = format_table(["clip_id", "iou", "ok"], [("a", 0.8, True), ("bbbb", None, False)])
    lines = text.splitlines()
    assert len({len(line) for line in lines[:-1]}) == 1  # every box line has the same width
    assert [c.strip() for c in lines[1].split("│")[1:-1]] == ["clip_id", "iou", "ok"]
    assert "│ a       │  0.8 │ true  │" in text and "│ bbbb    │ NULL │ false │" in text
    assert lines[-1] == "2 rows"
    assert format_table(["n"], [(1,), (2,), (3,)], max_rows=2).splitlines()[-1] == "3 rows (2 shown)"


# -- concurrency: real processes --------------------------------------------------------


def test_writer_retries_until_the_holder_releases(tmp_path, caplog):
    db = tmp_path / "e.duckdb"
    Store(db).init()
    with Holder(db, tmp_path) as holder:

        class ReleaseOnRetry(logging.Handler):
            """Let the holder go once our writer has met the lock (deterministic, no sleeps)."""

            def emit(self, record):
                if "busy" in record.getMessage():
                    holder.release()

        handler = ReleaseOnRetry()
        logging.getLogger("egoclean.store").addHandler(handler)
        try:
            with caplog.at_level(logging.INFO, logger="egoclean.store"):
                Store(db, retries=1000, timeout_sec=60).replace_clip(clip_info(CLIP_A), make_det(), "m")
        finally:
            logging.getLogger("egoclean.store").removeHandler(handler)
    assert any("busy" in r.getMessage() and str(db) in r.getMessage() for r in caplog.records)
    assert counts(db) == {"clips": 1, "segments": 2, "window_scores": 60}


def test_lock_holder_from_duckdbs_message():
    msg = ('IO Error: Could not set lock on file "/x/e.duckdb": Conflicting lock is held in /usr/bin/python3.11 '
           '(PID 4194303). See also https://duckdb.org/docs/stable/connect/concurrency')
    assert lock_holder(msg) == "process 4194303 (/usr/bin/python3.11)"  # no such pid: the executable DuckDB named
    assert lock_holder("IO Error: Could not set lock on file") == "another process"


def test_writer_gives_up_with_store_busy_when_never_released(tmp_path):
    db = tmp_path / "e.duckdb"
    Store(db).init()
    with Holder(db, tmp_path) as holder:
        with pytest.raises(StoreBusyError, match=f"{db}.*busy.*attempts") as e:
            Store(db, retries=1000, timeout_sec=0.3).replace_clip(clip_info(CLIP_A), make_det(), "m")
        assert "Traceback" not in str(e.value)
        # the message names the process holding the file (DuckDB reports its PID) and what to close
        assert f"process {holder.proc.pid} ({sys.executable} -c " in str(e.value)
        assert "close the DuckDB session in that process" in str(e.value)
        with pytest.raises(StoreBusyError, match="gave up after 3 attempts"):
            Store(db, retries=3, timeout_sec=60).query("SELECT 1")
    assert counts(db)["clips"] == 0


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    import test_store as t
    from egoclean.store import Store
    db, clips = sys.argv[3], sys.argv[4].split(",")
    st = Store(db, retries=10000, timeout_sec=120)
    for rep in range(2):
        for i, cid in enumerate(clips):
            st.replace_clip(t.clip_info(cid), t.detect_synthetic(seed=i + rep), "m")
    """
)


def test_two_writer_processes_both_succeed_without_duplicates(tmp_path):
    db = tmp_path / "e.duckdb"
    groups = [[f"factory001_worker00{w}_{i:05d}" for i in range(4)] for w in (1, 2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(ROOT / "tests" / "store"), str(db), ",".join(g)],
                         stderr=subprocess.PIPE, text=True)
        for g in groups
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert counts(db) == {"clips": 8, "segments": 24, "window_scores": 480}
    _, rows = Store(db).query("SELECT count(DISTINCT (clip_id, t_sec)), count(*) FROM window_scores")
    assert rows == [(480, 480)]


def test_threads_of_one_process_write_and_read_together(tmp_path):
    db = tmp_path / "e.duckdb"
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            st = Store(db)
            for i in range(4):
                st.replace_clip(clip_info(f"factory001_worker00{w}_{i:05d}"), make_det(seed=i), "m")
                st.query("SELECT count(*) FROM clips")
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in (1, 2, 3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert counts(db) == {"clips": 12, "segments": 24, "window_scores": 720}


# -- egoclean sql ---------------------------------------------------------------------------


def test_cli_sql_prints_a_table(tmp_path, capsys):
    db = tmp_path / "e.duckdb"
    Store(db).replace_clip(clip_info(CLIP_A), make_det(spans=((10.0, 20.0), (30.0, 40.0))), "m")
    rc = main(["sql", "SELECT kind, start_sec, end_sec FROM segments ORDER BY start_sec", "--db", str(db)])
    out = capsys.readouterr().out
    assert rc == 0
    assert [c.strip() for c in out.splitlines()[1].split("│")[1:-1]] == ["kind", "start_sec", "end_sec"]
    assert "│ anomaly │        30 │      40 │" in out and out.rstrip().endswith("3 rows")


def test_cli_sql_errors_are_one_line(tmp_path, capsys):
    db = tmp_path / "e.duckdb"
    assert main(["sql", "SELECT 1", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and str(db) in err and "Traceback" not in err

    Store(db).init()
    assert main(["sql", "SELECT * FROM no_such_table", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_table" in err and "in query: SELECT * FROM no_such_table" in err

    assert main(["sql", "DELETE FROM clips", "--db", str(db)]) == 2
    assert "read-only" in capsys.readouterr().err

    with Holder(db, tmp_path):
        assert main(["sql", "SELECT 1", "--db", str(db), "--timeout", "0.3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "busy" in err and str(db) in err
