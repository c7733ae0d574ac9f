"""The archive writer: one member ``export.json``, reproducible bytes, tgz and zip flavours."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from foundation.archive import (
    BLOCK,
    ArchiveResult,
    archive_file_name,
    content_type,
    iter_zip,
    spooled,
    tar_header,
    write_archive,
)

LAST_UPDATED = datetime(2016, 10, 4, 12, 31, 13, tzinfo=UTC)


def sample_json(items: int = 2000) -> bytes:
    body = b",".join(
        b'{"type":"Concept","id":"%d","names":[{"name":"Name %d","locale":"en"}]}' % (i, i) for i in range(items)
    )
    return b'{"type":"Source Version","concepts":[' + body + b'],"mappings":[]}'


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def archive(chunks: Iterable[bytes], fmt: str, mtime: datetime = LAST_UPDATED) -> tuple[bytes, ArchiveResult]:
    sink = io.BytesIO()
    with spooled(chunks) as spool:
        result = write_archive(spool, sink, fmt, mtime)
    return sink.getvalue(), result


class NonSeekableSink(io.RawIOBase):
    """What an HTTP response or an upload stream looks like: write-only, no seek, no tell."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.pieces.append(bytes(data))
        return len(data)


# --- names ----------------------------------------------------------------------------------


def test_file_name_carries_the_14_digit_utc_stamp_of_an_aware_non_utc_datetime() -> None:
    plus_two = datetime(2016, 10, 4, 14, 31, 13, 500000, tzinfo=timezone(timedelta(hours=2)))
    assert archive_file_name("CIEL", "v2016-08-22", plus_two, "tgz") == "CIEL_v2016-08-22.20161004123113.tgz"
    assert archive_file_name("CIEL", "v1", plus_two, "zip") == "CIEL_v1.20161004123113.zip"


def test_file_name_takes_a_naive_datetime_as_utc() -> None:
    assert archive_file_name("R", "v1", datetime(2020, 1, 2, 3, 4, 5), "tgz") == "R_v1.20200102030405.tgz"


def test_content_types_are_gzip_and_exactly_zip() -> None:
    assert content_type("tgz") == "application/gzip"
    assert content_type("zip") == "application/zip"


def test_it_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError):
        archive_file_name("R", "v1", LAST_UPDATED, "rar")
    with pytest.raises(ValueError):
        content_type("tar")


# --- tgz ------------------------------------------------------------------------------------


def test_tgz_holds_exactly_export_json_with_the_input_bytes() -> None:
    data = sample_json()
    raw, result = archive(chunked(data, 1000), "tgz")
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [member.name for member in members] == ["export.json"]
        member = members[0]
        assert member.isfile()
        assert tar.extractfile(member).read() == data
    assert member.size == len(data)
    assert member.mtime == int(LAST_UPDATED.timestamp())
    assert (member.mode, member.uid, member.gid, member.uname, member.gname) == (0o644, 0, 0, "", "")
    assert result == ArchiveResult(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())


def test_tgz_gzip_header_has_mtime_zero_and_no_file_name() -> None:
    raw, _ = archive([sample_json(10)], "tgz")
    magic, method, flags, mtime = struct.unpack("<HBBI", raw[:8])
    assert (magic, method) == (0x8B1F, 8)
    assert mtime == 0
    assert flags & 0x08 == 0  # FNAME


def test_tgz_bytes_are_identical_across_runs_whatever_the_chunking() -> None:
    data = os.urandom(4096) * 200 + sample_json(20000)
    first, first_result = archive(chunked(data, 7919), "tgz")
    second, second_result = archive(chunked(data, 1 << 16), "tgz")
    assert first == second
    assert first_result.sha256 == second_result.sha256


def test_tgz_of_a_large_input_spanning_many_blocks_round_trips() -> None:
    # Several 1 MiB compressor blocks, with an odd size so the tar padding matters.
    data = (sample_json(60000) + os.urandom(BLOCK // 2)) * 2 + b"x"
    assert len(data) > 4 * BLOCK
    raw, result = archive(chunked(data, 300_001), "tgz")
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        assert tar.extractfile("export.json").read() == data
    assert result.size == len(raw)


def test_tgz_header_beyond_8_gib_uses_a_pax_size_record() -> None:
    size = 10 * 2**30
    header = tar_header(size, LAST_UPDATED)
    assert len(header) == 3 * 512  # pax header block, its records, the ustar header
    assert b"size=%d\n" % size in header[:1024]
    assert header == tar_header(size, LAST_UPDATED)


def test_tgz_streams_into_a_non_seekable_sink() -> None:
    data = sample_json()
    sink = NonSeekableSink()
    with spooled([data]) as spool:
        write_archive(spool, sink, "tgz", LAST_UPDATED)
    with tarfile.open(fileobj=io.BytesIO(b"".join(sink.pieces)), mode="r:gz") as tar:
        assert tar.extractfile("export.json").read() == data


# --- zip ------------------------------------------------------------------------------------


def test_zip_holds_exactly_export_json_deflated_with_the_input_bytes() -> None:
    data = sample_json()
    raw, result = archive(chunked(data, 999), "zip")
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.namelist() == ["export.json"]
        info = zf.getinfo("export.json")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.date_time == (2016, 10, 4, 12, 31, 12)  # DOS time has 2-second steps
        assert info.external_attr >> 16 == 0o100644
        assert zf.testzip() is None
        assert zf.read("export.json") == data
    assert result == ArchiveResult(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())


def test_zip_bytes_are_identical_across_runs_whatever_the_chunking() -> None:
    data = sample_json(30000)
    assert archive(chunked(data, 4001), "zip")[0] == archive([data], "zip")[0]


def test_iter_zip_streams_through_a_non_seekable_sink() -> None:
    data = sample_json(30000) + os.urandom(BLOCK)
    sink = NonSeekableSink()
    for piece in iter_zip(chunked(data, 65536)):
        sink.write(piece)
    assert len(sink.pieces) > 3  # yielded as it went, not at the end
    with zipfile.ZipFile(io.BytesIO(b"".join(sink.pieces))) as zf:
        assert zf.namelist() == ["export.json"]
        assert zf.read("export.json") == data


def test_iter_zip_writes_zip64_when_the_known_size_needs_it() -> None:
    data = sample_json(100)
    raw = b"".join(iter_zip([data], mtime=LAST_UPDATED, size=2**32 + 1))
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.read("export.json") == data
    assert struct.unpack("<H", raw[4:6])[0] == 45  # version needed: zip64
    assert raw.find(b"PK\x06\x06") > 0  # zip64 end of central directory


def test_zip_of_an_empty_member_is_valid() -> None:
    raw = b"".join(iter_zip([]))
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.read("export.json") == b""
