"""Hostile structure in every parsed input: a one-line error naming the input, never a
traceback, a hang or a silently wrong value. Example cases, then a property-based test
per parser (sidecar, intrinsics, ground truth, tar index); clip ids and CLI options have
theirs in tests/core/test_ids.py and tests/core/test_options.py.
"""

from __future__ import annotations

import io
import json
import math
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egoclean.core.errors import GroundTruthError, IntrinsicsError, TarError
from egoclean.core.defaults import SPAN_END_TOLERANCE_SEC as DURATION_TOLERANCE_SEC
from egoclean.temporal.evaluation import COLUMNS, load_ground_truth
from egoclean.core.ids import ClipId, is_clip_id
from egoclean.media.intrinsics import FisheyeIntrinsics
from egoclean.ingest.source import _parse_sidecar
from egoclean.ingest.tarindex import TarMember, scan_headers

CLIP = ClipId.parse("factory001_worker001_00001")
VIDEO = TarMember("factory001_worker001_00001.mp4", 512, 1000, 0)
INTR = {"model": "fisheye", "image_width": 64, "image_height": 48, "fx": 30.0, "fy": 30.0,
        "cx": 32.0, "cy": 24.0, "k1": 0.01, "k2": 0.0, "k3": 0.0, "k4": 0.0}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "9" * 5000


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and len(msg) < 2000, msg[:300]
    return msg


# ---------------------------------------------------------------- sidecar
@pytest.mark.parametrize("raw, problem", [
    (DEEP, "nested"),
    ('{"size_bytes": 1000, "x": ' + DEEP + "}", "nested"),
    ('{"size_bytes": ' + HUGE_INT + "}", "digits"),
    ('{"size_bytes": 1000, "factory_id": ' + HUGE_INT + "}", "digits"),
    ('{"size_bytes": 1000, "duration_sec": NaN}', "NaN"),
    ('{"size_bytes": 1000, "fps": Infinity}', "Infinity"),
    ('{"size_bytes": 1000, "fps": 1e999}', "out of range"),
    ('{"size_bytes": 1000, "worker_id": "worker_００1"}', "worker_id"),
])
def test_hostile_sidecars(raw, problem):
    with pytest.raises(TarError) as e:
        _parse_sidecar(raw.encode(), CLIP, VIDEO, "shard.tar")
    msg = one_line(e.value)
    assert "shard.tar" in msg and "factory001_worker001_00001.json" in msg and problem in msg, msg


@FAST
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=20)
       | st.fixed_dictionaries({"size_bytes": st.integers(0, 2000)}, optional={
           "factory_id": st.integers() | st.text(max_size=12), "worker_id": st.text(max_size=12),
           "video_index": st.integers() | st.floats(), "fps": st.floats()}))
def test_sidecar_parser_accepts_only_what_is_consistent(obj):
    raw = json.dumps(obj).encode()  # json.dumps writes NaN/Infinity as Python does
    try:
        side = _parse_sidecar(raw, CLIP, VIDEO, "shard.tar")
    except TarError as e:
        one_line(e)
        return
    assert isinstance(side, dict) and side["size_bytes"] == VIDEO.size
    json.dumps(side, allow_nan=False)  # what `fetch` prints is standard JSON


# ---------------------------------------------------------------- intrinsics
@pytest.mark.parametrize("text, problem", [
    (DEEP, "nested"),
    (json.dumps(INTR)[:-1] + ', "extra": ' + DEEP + "}", "nested"),
    (json.dumps(INTR).replace('"image_width": 64', '"image_width": ' + HUGE_INT), "digits"),
    (json.dumps(INTR).replace('"fx": 30.0', '"fx": 1e999'), "fx"),
    (json.dumps(INTR).replace('"fx": 30.0', '"fx": 1' + "0" * 400), "digits"),
])
def test_hostile_intrinsics(text, problem, tmp_path):
    p = tmp_path / "intrinsics.json"
    p.write_text(text)
    with pytest.raises(IntrinsicsError) as e:
        FisheyeIntrinsics.load(p)
    msg = one_line(e.value)
    assert str(p) in msg and problem in msg, msg


def test_huge_python_integers_in_an_intrinsics_dict():
    with pytest.raises(IntrinsicsError, match="image_width"):
        FisheyeIntrinsics.from_dict(INTR | {"image_width": 10**400})
    with pytest.raises(IntrinsicsError, match="fx"):
        FisheyeIntrinsics.from_dict(INTR | {"fx": 10**400})


@FAST
@given(st.fixed_dictionaries({}, optional={k: st.one_of(st.integers(), st.floats(), st.text(max_size=5),
                                                        st.booleans(), st.none())
                                          for k in (*INTR, "extra")}).map(lambda d: INTR | d)
       | st.dictionaries(st.text(max_size=6), st.integers() | st.floats(), max_size=6))
def test_intrinsics_parser_gives_a_valid_camera_or_one_error(d):
    try:
        fe = FisheyeIntrinsics.from_dict(json.loads(json.dumps(d)), source="w/intrinsics.json")
    except IntrinsicsError as e:
        assert "w/intrinsics.json" in one_line(e)
        return
    assert fe.image_width > 0 and fe.image_height > 0 and fe.fx > 0 and fe.fy > 0
    assert all(math.isfinite(v) for v in (fe.fx, fe.fy, fe.cx, fe.cy, fe.k1, fe.k2, fe.k3, fe.k4))


# ---------------------------------------------------------------- ground truth
HEADER = ",".join(COLUMNS) + "\n"
ROW = "factory001_worker001_00001,60,00:10,00:20,off task\n"


@pytest.mark.parametrize("body, problem", [
    (ROW + 'factory001_worker001_00001,60,00:30,00:40,"unterminated\n' + ROW * 3, "line 3"),
    ('factory001_worker001_00001,60,00:10,00:20,"a\nb"\n', "line 2"),
    ("factory001_worker001_00001,60,00:10,00:20," + "x" * 200_000 + "\n", "label"),
    ("factory001_worker001_00001,60,00:10,00:20," + "x" * 5000 + "\n", "label"),
    ("factory001_worker001_00001," + HUGE_INT + ",00:10,00:20,x\n", "clip_duration_sec"),
    ("factory001_worker001_00001,1e999,00:10,00:20,x\n", "clip_duration_sec"),
    ("factory001_worker001_00001,60,00:10,００:20,x\n", "end"),
    ("factory001_worker001_00001\n,60,00:10,00:20,x\n", "clip"),
])
def test_hostile_ground_truth(body, problem, tmp_path):
    p = tmp_path / "gt.csv"
    p.write_text(HEADER + body)
    with pytest.raises(GroundTruthError) as e:
        load_ground_truth(p)
    msg = one_line(e.value)
    assert str(p) in msg and problem in msg, msg


@FAST
@given(st.lists(st.lists(st.sampled_from(["factory001_worker001_00001", "60", "00:10", "00:20", "1:00:00", "-1",
                                          "nan", "inf", "x", '"', '"a,b"', "", "\n", "\r", "５", "1e999", "label"]),
                         min_size=0, max_size=7), max_size=6))
def test_ground_truth_parser_gives_sane_spans_or_one_error(rows):
    text = HEADER + "".join(",".join(r) + "\n" for r in rows)
    try:
        spans = load_ground_truth(_write(text))
    except GroundTruthError as e:
        one_line(e)
        return
    assert len(spans) <= len(rows)
    for s in spans:
        assert is_clip_id(s.clip_id) and "\n" not in s.label
        assert all(math.isfinite(v) for v in (s.clip_duration_sec, s.start_sec, s.end_sec))
        assert 0 <= s.start_sec < s.end_sec <= s.clip_duration_sec + DURATION_TOLERANCE_SEC


_TMP: list = []


def _write(text: str):
    import tempfile
    from pathlib import Path

    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp()))
    p = _TMP[0] / "gt.csv"
    p.write_text(text)
    return p


# ---------------------------------------------------------------- tar index
def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD_TAR = _tar({"factory001_worker001_00001.mp4": b"v" * 700, "factory001_worker001_00001.json": b"{}"})


@FAST
@given(st.data())
def test_tar_index_of_damaged_shards_is_members_or_one_error(data):
    raw = bytearray(GOOD_TAR)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    raw = bytes(raw[:cut])
    try:
        scan = scan_headers(lambda off, n: raw[off : off + n], len(raw), "shard.tar")
    except TarError as e:
        assert "shard.tar" in one_line(e)
        return
    for m in scan.members:
        assert 0 <= m.offset and m.offset + m.size <= len(raw)
        assert "/" not in m.name.strip("/") or not m.name.startswith("/")
        assert ".." not in m.name.split("/")


# ---------------------------------------------------------------- the dataset layout
def _worker(root, shards: dict[str, list[str]]):
    from tests.support.hubstub import fake_video, make_tar, sidecar

    wdir = root / "factory_001" / "workers" / "worker_001"
    for shard, keys in shards.items():
        members = []
        for k in keys:
            video = fake_video(k + shard, 3000)
            members += [(f"{k}.mp4", video), (f"{k}.json", json.dumps(sidecar(k, len(video))).encode())]
        make_tar(wdir / shard, members)
    (wdir / "intrinsics.json").write_text(json.dumps(INTR))
    return wdir


def test_the_same_clip_in_two_shards_is_refused(tmp_path):
    from egoclean.ingest.source import open_source

    _worker(tmp_path / "src", {"factory001_worker001_part00.tar": ["factory001_worker001_00000",
                                                                   "factory001_worker001_00001"],
                               "factory001_worker001_part01.tar": ["factory001_worker001_00001"]})
    src = open_source(str(tmp_path / "src"), cache_dir=tmp_path / "cache")
    with pytest.raises(TarError) as e:
        src.fetch_clip("factory001_worker001_00001", tmp_path / "out", progress=False)
    msg = one_line(e.value)
    assert "factory001_worker001_00001" in msg and "part00.tar" in msg and "part01.tar" in msg, msg
    assert not (tmp_path / "out" / "factory001_worker001_00001.mp4").exists()
    # a clip that is in one shard only is still fetched
    src.fetch_clip("factory001_worker001_00000", tmp_path / "out", progress=False)


def test_local_permanent_errors_are_not_retried_as_network_faults(tmp_path):
    import time

    from egoclean.core.errors import SourceError
    from egoclean.ingest.source import open_source

    wdir = _worker(tmp_path / "src", {"factory001_worker001_part00.tar": ["factory001_worker001_00000"]})
    (wdir / "intrinsics.json").unlink()
    (wdir / "intrinsics.json").mkdir()  # EISDIR when read: the disk will not change its mind
    src = open_source(str(tmp_path / "src"), cache_dir=tmp_path / "cache", retries=4, backoff=0.5)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as e:
        src.fetch_intrinsics("factory001_worker001_00000", tmp_path / "i.json")
    msg = one_line(e.value)
    assert time.monotonic() - t0 < 0.5, "a permanent local error was retried"
    assert "intrinsics.json" in msg and "network" not in msg and "rerun later" not in msg, msg


def test_cli_fetch_prints_standard_json(tmp_path):
    """A sidecar holding NaN is refused; what fetch prints is always standard JSON."""
    from tests.support.hubstub import fake_video, make_tar, sidecar

    from .conftest import cli

    wdir = _worker(tmp_path / "src", {"factory001_worker001_part00.tar": ["factory001_worker001_00000"]})
    k = "factory001_worker001_00001"
    video = fake_video(k, 3000)
    bad = json.dumps(sidecar(k, len(video), duration_sec=float("nan"))).encode()  # Python writes NaN
    make_tar(wdir / "factory001_worker001_part01.tar", [(f"{k}.mp4", video), (f"{k}.json", bad)])
    done = cli(["fetch", "factory001_worker001_00000", "--source", str(tmp_path / "src"), "-o", str(tmp_path / "o")])
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    done = cli(["fetch", k, "--source", str(tmp_path / "src"), "-o", str(tmp_path / "o")])
    assert done.returncode == 2 and "NaN" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "o" / f"{k}.mp4").exists()


# ---------------------------------------------------------------- preprocessor config
PRE = {"do_resize": True, "do_center_crop": True, "do_normalize": True, "do_rescale": True, "resample": 2,
       "size": {"shortest_edge": 292}, "crop_size": {"height": 256, "width": 256},
       "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "rescale_factor": 1 / 255}


@pytest.mark.parametrize("text, problem", [
    (DEEP, "nested"),
    ("[1, 2, 3]", "object"),
    (json.dumps(PRE).replace('"shortest_edge": 292', '"shortest_edge": 1e999'), "1e999"),
    (json.dumps(PRE).replace('"shortest_edge": 292', '"shortest_edge": ' + HUGE_INT), "digits"),
    (json.dumps(PRE).replace('"shortest_edge": 292', '"shortest_edge": 1000000000'), "shortest_edge"),
    (json.dumps(PRE | {"image_std": [float("nan"), 0.2, 0.2]}), "NaN"),
    (json.dumps(PRE | {"rescale_factor": -1}), "rescale_factor"),
    (json.dumps(PRE | {"crop_size": {"height": True, "width": True}}), "crop"),
])
def test_hostile_preprocessor_configs(text, problem, tmp_path):
    from egoclean.core.errors import InvalidInputError
    from egoclean.embed.preprocess import PreprocessConfig

    p = tmp_path / "video_preprocessor_config.json"
    p.write_text(text)
    with pytest.raises(InvalidInputError) as e:
        PreprocessConfig.from_processor_json(p)
    msg = one_line(e.value)
    assert str(p) in msg and problem in msg, msg
