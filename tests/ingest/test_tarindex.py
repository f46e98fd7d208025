"""Tar header scanning: offsets against tarfile's own, long names, pax, and bad tars."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from egoclean.core.errors import TarError
from egoclean.ingest.tarindex import BLOCK, TarMember, parse_pax, scan_headers


def tar_bytes(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT, kind: bytes = tarfile.REGTYPE) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "target"
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


class Reader:
    """A ranged reader over bytes that records each read, like a remote file."""

    def __init__(self, data: bytes):
        self.data = data
        self.reads: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        return self.data[offset : offset + length]


def scan(data: bytes, readahead: int = 4096):
    return scan_headers(Reader(data), len(data), "test.tar", readahead)


def test_offsets_match_tarfile_and_data_is_skipped():
    members = [(f"factory001_worker001_{i:05d}.mp4", bytes([i]) * (20_000 + 333 * i)) for i in range(4)]
    members += [(f"factory001_worker001_{i:05d}.json", json.dumps({"i": i}).encode()) for i in range(4)]
    data = tar_bytes(members)
    reader = Reader(data)
    res = scan_headers(reader, len(data), "test.tar", readahead=BLOCK)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        expected = [(m.name, m.offset_data, m.size) for m in tf.getmembers()]
    assert [(m.name, m.offset, m.size) for m in res.members] == expected
    for m, (_name, payload) in zip(res.members, members):
        assert data[m.offset : m.offset + m.size] == payload
    # With no read-ahead, every read is one header block: the video data is never read.
    assert all(n == BLOCK for _, n in reader.reads)
    assert res.reads == len(members) + 1  # one per member, plus the end-of-archive block
    assert res.bytes_read < len(data) / 10


def test_readahead_reads_small_sidecar_and_next_header_in_one_go():
    members = []
    for i in range(3):
        members += [(f"c_{i}.mp4", b"v" * 30_000), (f"c_{i}.json", b"{}")]
    data = tar_bytes(members)
    res = scan(data, readahead=4096)
    assert len(res.members) == 6
    assert res.reads == 4  # first header, then one read per sidecar (+ next header)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_and_non_ascii_names(fmt):
    long_name = "factory001_worker001_00001_" + "x" * 150 + ".mp4"
    uni = "factory001_worker001_00002_caf\u00e9.json"
    data = tar_bytes([(long_name, b"a" * 1000), (uni, b"{}"), ("plain.json", b"[]")], fmt=fmt)
    res = scan(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        expected = [(m.name, m.offset_data, m.size) for m in tf.getmembers()]
    assert [(m.name, m.offset, m.size) for m in res.members] == expected
    assert res.members[0].name == long_name and res.members[1].name == uni


def test_member_round_trips_through_dict():
    m = TarMember("a.mp4", 512, 10, 0)
    assert TarMember.from_dict(m.to_dict()) == m


def test_empty_tar_and_tar_without_end_blocks():
    assert scan(tar_bytes([])).members == []
    data = tar_bytes([("a.json", b"x" * 600)])
    unterminated = data[: BLOCK + 1024]  # header + data padded to 1024, no zero blocks
    assert [m.name for m in scan(unterminated).members] == ["a.json"]


def test_truncated_tar():
    data = tar_bytes([("a.mp4", b"v" * 10_000), ("a.json", b"{}")])
    with pytest.raises(TarError, match=r"test\.tar: truncated tar.*'a\.mp4'"):
        scan(data[:5000])
    with pytest.raises(TarError, match="truncated tar"):
        scan(data[: BLOCK + 10_240 + 100])  # cut inside the second header


def test_not_a_tar():
    with pytest.raises(TarError, match=r"test\.tar: not a tar file"):
        scan(b'{"this": "is json, not a tar"}' * 40)
    with pytest.raises(TarError, match="not a tar file"):
        scan(b"tiny")


def test_corrupt_header_checksum():
    data = bytearray(tar_bytes([("a.mp4", b"v" * 1000), ("a.json", b"{}")]))
    second = BLOCK + 1024
    data[second + 10] ^= 0xFF  # flip a name byte: the checksum no longer matches
    with pytest.raises(TarError, match=rf"corrupt tar: invalid header at byte {second}"):
        scan(bytes(data))


@pytest.mark.parametrize("name", ["../x.mp4", "/abs.mp4", "a/b.mp4", "..", "a\\b.mp4"])
def test_unsafe_member_names_are_rejected(name):
    data = tar_bytes([("ok.json", b"{}"), (name, b"data")])
    with pytest.raises(TarError, match="unsafe member name"):
        scan(data)


def test_dot_slash_names_from_tar_of_a_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c_00001.mp4").write_bytes(b"v" * 700)
    (tmp_path / "d" / "c_00001.json").write_bytes(b"{}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(tmp_path / "d", arcname=".")  # "./" folder entry, then "./c_00001.json", ...
    names = sorted(m.name for m in scan(buf.getvalue()).members)
    assert names == ["c_00001.json", "c_00001.mp4"]
    with pytest.raises(TarError, match="unsafe member name '../c.mp4'"):
        scan(tar_bytes([("./../c.mp4", b"x")]))


def test_ustar_prefix_is_joined_and_rejected():
    name = "d" * 80 + "/" + "f" * 80 + ".mp4"  # > 100 chars: ustar splits it into prefix/name
    data = tar_bytes([(name, b"x")], fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(TarError, match="unsafe member name") as e:
        scan(data)
    assert name in str(e.value)


def test_links_and_duplicates_are_rejected():
    with pytest.raises(TarError, match="symbolic link"):
        scan(tar_bytes([("a.mp4", b"")], kind=tarfile.SYMTYPE))
    with pytest.raises(TarError, match="duplicate member 'a.json'"):
        scan(tar_bytes([("a.json", b"1"), ("a.json", b"2")]))


def test_parse_pax_records_and_corruption():
    rec = b"31 path=factory001_a_00001.mp4\n"
    assert len(rec) == 31
    assert parse_pax(rec + b"\0" * 10, "t.tar", 0) == {"path": "factory001_a_00001.mp4"}
    with pytest.raises(TarError, match="corrupt pax extended header at byte 512"):
        parse_pax(b"99 path=x\n", "t.tar", 512)
