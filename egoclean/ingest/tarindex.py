"""Tar shard indexing from headers alone: member names, data offsets and sizes.

A shard is up to ~1 GB, and one clip needs only two of its members, so the index is
built by reading the 512-byte headers with ranged reads and skipping each member's
data by its size rounded up to 512. Header blocks are parsed by Python's
`tarfile.TarInfo.frombuf` (ustar prefix, checksums, base-256 sizes); GNU long names
and pax extended headers, which `frombuf` leaves to a full `TarFile`, are applied here.
"""

from __future__ import annotations

import tarfile
from dataclasses import asdict, dataclass
from typing import Callable

from egoclean.core.errors import TarError

BLOCK = tarfile.BLOCKSIZE  # 512
# One ranged read per header would cost two round trips per clip (video header, then
# sidecar header). Reading a few blocks at each header also brings in the small sidecar
# (a few hundred bytes) and the next video's header, so a clip costs one round trip.
DEFAULT_READAHEAD = 4096

_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_TYPE_NAMES = {
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "fifo",
    tarfile.GNUTYPE_SPARSE: "GNU sparse file",
}

# read(offset, length) -> bytes; returns fewer bytes only at the end of the data.
ReadFn = Callable[[int, int], bytes]


@dataclass(frozen=True)
class TarMember:
    """One regular file in a tar: its name, where its data starts, and its size."""

    name: str
    offset: int
    size: int
    header_offset: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TarMember":
        return cls(str(d["name"]), int(d["offset"]), int(d["size"]), int(d["header_offset"]))


def check_member_name(name: str, label: str, header_offset: int) -> str:
    """Return `name` if it is a plain file name; raise TarError for paths and specials.

    Shards are flat (WebDataset), so a `/`, `\\`, `..` or an absolute path can only be
    corruption or an attempt to write outside the output folder."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith("~")
    )
    if bad:
        raise TarError(
            f"{label}: unsafe member name {name!r} in the header at byte {header_offset} "
            "(members must be plain file names, without '/', '\\', '..' or an absolute path)"
        )
    return name


def _round_up(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def parse_pax(data: bytes, label: str, header_offset: int) -> dict[str, str]:
    """Parse pax extended-header records (`"<len> <key>=<value>\\n"`) into a dict."""
    out: dict[str, str] = {}
    pos = 0
    data = data.rstrip(b"\x00")
    while pos < len(data):
        sp = data.find(b" ", pos)
        try:
            length = int(data[pos:sp]) if sp > pos else -1
        except ValueError:
            length = -1
        record = data[pos : pos + length] if length > 0 else b""
        if length <= 0 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise TarError(f"{label}: corrupt pax extended header at byte {header_offset}")
        key, _, value = record[sp - pos + 1 : -1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class _BlockReader:
    """Serves small reads from one read-ahead buffer to save round trips."""

    def __init__(self, read: ReadFn, size: int, label: str, readahead: int):
        self._read, self._size, self._label = read, size, label
        self._readahead = max(BLOCK, readahead)
        self._buf_start, self._buf = 0, b""
        self.reads = 0
        self.bytes_read = 0

    def get(self, offset: int, length: int) -> bytes:
        end = offset + length
        if end > self._size:
            raise TarError(
                f"{self._label}: truncated tar: needs bytes {offset}..{end} but the shard has "
                f"only {self._size} bytes"
            )
        if not (self._buf_start <= offset and end <= self._buf_start + len(self._buf)):
            want = min(max(length, self._readahead), self._size - offset)
            data = self._read(offset, want)
            self.reads += 1
            self.bytes_read += len(data)
            if len(data) < length:
                raise TarError(
                    f"{self._label}: truncated tar: got {len(data)} of {length} bytes at byte {offset}"
                )
            self._buf_start, self._buf = offset, data
        lo = offset - self._buf_start
        return self._buf[lo : lo + length]


@dataclass
class ScanResult:
    """The members found by `scan_headers`, and what it cost."""

    members: list[TarMember]
    end_offset: int
    reads: int
    bytes_read: int


def scan_headers(read: ReadFn, size: int, label: str, readahead: int = DEFAULT_READAHEAD) -> ScanResult:
    """Walk a tar's headers through `read(offset, length)` and list its regular files.

    `size` is the shard's size (from the listing); `label` names the shard in errors.
    Raises TarError for a truncated or corrupt tar, a non-tar file, unsafe member names,
    duplicate names and members that are not regular files."""
    reader = _BlockReader(read, size, label, readahead)
    members: list[TarMember] = []
    seen: set[str] = set()
    offset = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    if size < BLOCK:
        raise TarError(f"{label}: not a tar file ({size} bytes, smaller than one 512-byte header)")
    # A tar that ends exactly after its last member, without the two zero blocks, is
    # accepted (as GNU tar and tarfile do); stray bytes shorter than a header are not.
    while offset < size:
        if offset + BLOCK > size:
            raise TarError(f"{label}: truncated tar: {size - offset} stray bytes after byte {offset}")
        buf = reader.get(offset, BLOCK)
        if buf.count(0) == BLOCK:
            break  # end-of-archive marker
        try:
            info = tarfile.TarInfo.frombuf(buf, "utf-8", "surrogateescape")
        except tarfile.HeaderError as e:
            what = "not a tar file" if offset == 0 else "corrupt tar"
            raise TarError(f"{label}: {what}: invalid header at byte {offset} ({e})") from None
        header_offset = offset
        data_offset = offset + BLOCK
        data_end = data_offset + info.size
        if info.size < 0 or data_end > size:
            raise TarError(
                f"{label}: truncated tar: member {info.name!r} (header at byte {offset}) needs "
                f"{info.size} data bytes but the shard ends at byte {size}"
            )
        offset = data_offset + _round_up(info.size)
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            data = reader.get(data_offset, info.size)
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if info.type in _PAX_TYPES:
            pax = parse_pax(reader.get(data_offset, info.size), label, header_offset)
            continue
        if info.type == tarfile.XGLTYPE:
            # Global pax headers carry defaults (charset, times) that do not move members.
            parse_pax(reader.get(data_offset, info.size), label, header_offset)
            continue
        name = pax.get("path") or long_name or info.name
        member_size = info.size
        if "size" in pax:
            try:
                member_size = int(pax["size"])
            except ValueError:
                raise TarError(f"{label}: corrupt pax size {pax['size']!r} at byte {header_offset}") from None
            data_end = data_offset + member_size
            if data_end > size:
                raise TarError(
                    f"{label}: truncated tar: member {name!r} needs {member_size} bytes but the "
                    f"shard ends at byte {size}"
                )
            offset = data_offset + _round_up(member_size)
        long_name, pax = None, {}
        # `tar -cf x.tar -C dir .` writes "./name" and a "./" entry for the folder itself:
        # harmless spellings of a flat layout, so they are read as "name" and skipped.
        while name.startswith("./"):
            name = name[2:]
        if info.type == tarfile.DIRTYPE and name in ("", "."):
            continue
        if info.type not in _FILE_TYPES:
            kind = _TYPE_NAMES.get(info.type, f"type {info.type!r}")
            raise TarError(
                f"{label}: member {name!r} (header at byte {header_offset}) is a {kind}; "
                "shards must hold only regular files"
            )
        check_member_name(name, label, header_offset)
        if name in seen:
            raise TarError(f"{label}: duplicate member {name!r} (second header at byte {header_offset})")
        seen.add(name)
        members.append(TarMember(name, data_offset, member_size, header_offset))
    if long_name is not None or pax:
        raise TarError(f"{label}: truncated tar: an extended header at the end has no member after it")
    return ScanResult(members, min(offset, size), reader.reads, reader.bytes_read)
