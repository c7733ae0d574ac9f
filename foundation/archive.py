"""Deterministic archives of ``export.json``: a gzip-compressed tar (.tgz) or a zip.

No Django models here, so the read API can reuse :func:`iter_zip` for ``Compress: true``.

Reproducibility: the same JSON bytes always give the same archive bytes (and so the same sha256).
ISA-L's deflate output depends on how its input is split into calls, so every compressor here
is fed fixed-size blocks whatever the caller's chunking; tar and zip headers use fixed owners,
modes and times; the gzip header carries mtime 0 and no file name.
"""

from __future__ import annotations

import hashlib
import struct
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from django.conf import settings
from isal import isal_zlib

FORMATS = ("tgz", "zip")
MEMBER = "export.json"
BLOCK = 1 << 20  # what each compressor call gets: fixed, for determinism; ~1 MiB bounds memory
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK  # tar pads its end to whole records, as tarfile and GNU tar do
CONTENT_TYPES = {"tgz": "application/gzip", "zip": "application/zip"}


@dataclass(frozen=True)
class ArchiveResult:
    """Size and sha256 of the ARCHIVE bytes (what a client downloads and verifies)."""

    size: int
    sha256: str


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown archive format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


def as_utc(value: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones taken as UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def archive_file_name(repo: str, version: str, last_updated: datetime, fmt: str) -> str:
    """``[:repo]_[:version].[:lastUpdated].tgz``; OpenMRS reads the 14-digit UTC stamp back."""
    stamp = as_utc(last_updated).strftime("%Y%m%d%H%M%S")
    return f"{repo}_{version}.{stamp}.{check_format(fmt)}"


def content_type(fmt: str) -> str:
    return CONTENT_TYPES[check_format(fmt)]


def gzip_level() -> int:
    # ISA-L knows levels 0-3; a deployment asking for "9" means "best", which is ISA-L's 3.
    return min(settings.EXPORT_GZIP_LEVEL, isal_zlib.ISAL_BEST_COMPRESSION)


def rechunk(chunks: Iterable[bytes], size: int = BLOCK) -> Iterator[bytes]:
    """The same bytes in blocks of exactly ``size`` (the last one shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        if not buffer and len(chunk) == size:
            yield bytes(chunk)
            continue
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


# --- spool: the JSON on disk, because a tar header needs the member's size first -----------


class Spool:
    """The JSON bytes in an anonymous temporary file, with their size."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.size = size

    def blocks(self) -> Iterator[bytes]:
        self.file.seek(0)
        while block := self.file.read(BLOCK):
            yield block


@contextmanager
def spooled(chunks: Iterable[bytes], directory: str | None = None) -> Iterator[Spool]:
    """Write ``chunks`` to a temporary file; it is gone when the block exits (or the process dies:
    the file is unlinked at creation, so a killed worker leaves nothing on disk)."""
    with tempfile.TemporaryFile(dir=directory, prefix="export-spool-") as file:
        size = 0
        for chunk in chunks:
            file.write(chunk)
            size += len(chunk)
        file.flush()
        yield Spool(file, size)


# --- sinks ----------------------------------------------------------------------------------


class HashingWriter:
    """Writes through to ``sink`` while counting and hashing the bytes."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        if data:
            self.digest.update(data)
            self.size += len(data)
            self.sink.write(data)

    def result(self) -> ArchiveResult:
        return ArchiveResult(size=self.size, sha256=self.digest.hexdigest())


# --- tgz ------------------------------------------------------------------------------------


def tar_header(size: int, mtime: datetime, member: str = MEMBER) -> bytes:
    """A fixed header: owner root/0 with empty names, mode 0644. PAX format: a plain ustar
    header up to 8 GiB, plus a pax ``size`` record beyond (which ustar cannot express)."""
    info = tarfile.TarInfo(member)
    info.size = size
    info.mtime = int(as_utc(mtime).timestamp())
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def tar_trailer(header_size: int, data_size: int) -> bytes:
    """Padding of the member's last block, the two zero end blocks, and padding to a record."""
    padding = -data_size % TAR_BLOCK
    written = header_size + data_size + padding + 2 * TAR_BLOCK
    return b"\0" * (padding + 2 * TAR_BLOCK + (-written % TAR_RECORD))


def write_tgz(spool: Spool, sink: BinaryIO, mtime: datetime, level: int | None = None) -> ArchiveResult:
    """A gzip-compressed tar holding ``export.json`` only, written to ``sink`` block by block."""
    out = HashingWriter(sink)
    # wbits 31: a gzip wrapper; ISA-L writes mtime 0, no file name, OS "unknown": fixed bytes.
    compressor = isal_zlib.compressobj(gzip_level() if level is None else level, isal_zlib.DEFLATED, 31)
    header = tar_header(spool.size, mtime)
    tail = tar_trailer(len(header), spool.size)
    for block in rechunk(_chain(header, spool.blocks(), tail)):
        out.write(compressor.compress(block))
    out.write(compressor.flush())
    return out.result()


def _chain(head: bytes, blocks: Iterable[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from blocks
    yield tail


# --- zip ------------------------------------------------------------------------------------

ZIP64_LIMIT = 0xFFFFFFFF
# Deflate can grow incompressible input slightly; below this a known size surely fits 32 bits.
ZIP64_SAFE = ZIP64_LIMIT - (16 << 20)
EXTERNAL_ATTR = (0o100644 & 0xFFFF) << 16  # a regular file, rw-r--r--
MADE_BY_UNIX = 3 << 8
FLAG_DATA_DESCRIPTOR = 0x08
FLAG_UTF8 = 0x800
DEFLATED = 8


def dos_datetime(value: datetime | None) -> tuple[int, int]:
    """(time, date) in MS-DOS form, UTC; clamped to the range DOS can hold."""
    if value is None:
        value = datetime(1980, 1, 1, tzinfo=UTC)
    value = as_utc(value)
    if value.year < 1980:
        value = datetime(1980, 1, 1, tzinfo=UTC)
    elif value.year > 2107:
        value = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)
    dos_time = (value.hour << 11) | (value.minute << 5) | (value.second // 2)
    dos_date = ((value.year - 1980) << 9) | (value.month << 5) | value.day
    return dos_time, dos_date


def iter_zip(
    chunks: Iterable[bytes],
    member: str = MEMBER,
    mtime: datetime | None = None,
    *,
    size: int | None = None,
    level: int | None = None,
) -> Iterator[bytes]:
    """A zip of one deflated member, yielded as it is compressed (fit for a non-seekable sink).

    Sizes and CRC follow the data in a data descriptor. ``size`` (the uncompressed size, when
    known) decides up front whether the entry needs zip64; with an unknown size a member that
    turns out beyond 4 GiB still gets zip64 sizes in its descriptor and central directory
    (central-directory readers accept that; strictly streaming readers may not).
    """
    name = member.encode("utf-8")
    flags = FLAG_DATA_DESCRIPTOR | (0 if name.isascii() else FLAG_UTF8)
    dos_time, dos_date = dos_datetime(mtime)
    zip64_local = size is not None and size >= ZIP64_SAFE
    if zip64_local:
        local_extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        local_sizes = (ZIP64_LIMIT, ZIP64_LIMIT)
    else:
        local_extra = b""
        local_sizes = (0, 0)
    version = 45 if zip64_local else 20
    local = struct.pack(
        "<IHHHHHIIIHH",
        0x04034B50,
        version,
        flags,
        DEFLATED,
        dos_time,
        dos_date,
        0,
        *local_sizes,
        len(name),
        len(local_extra),
    )
    yield local + name + local_extra
    offset = len(local) + len(name) + len(local_extra)

    compressor = isal_zlib.compressobj(gzip_level() if level is None else level, isal_zlib.DEFLATED, -15)
    crc = 0
    usize = 0
    csize = 0
    for block in rechunk(chunks):
        crc = isal_zlib.crc32(block, crc)
        usize += len(block)
        out = compressor.compress(block)
        if out:
            csize += len(out)
            yield out
    out = compressor.flush()
    csize += len(out)
    yield out

    zip64 = zip64_local or usize >= ZIP64_LIMIT or csize >= ZIP64_LIMIT
    if zip64:
        descriptor = struct.pack("<IIQQ", 0x08074B50, crc, csize, usize)
    else:
        descriptor = struct.pack("<IIII", 0x08074B50, crc, csize, usize)
    yield descriptor
    offset += csize + len(descriptor)

    if zip64:
        central_extra = struct.pack("<HHQQ", 1, 16, usize, csize)
        central_sizes = (ZIP64_LIMIT, ZIP64_LIMIT)
        version = 45
    else:
        central_extra = b""
        central_sizes = (csize, usize)
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            MADE_BY_UNIX | version,
            version,
            flags,
            DEFLATED,
            dos_time,
            dos_date,
            crc,
            *central_sizes,
            len(name),
            len(central_extra),
            0,  # comment length
            0,  # disk number
            0,  # internal attributes
            EXTERNAL_ATTR,
            0,  # the local header's offset: always the start
        )
        + name
        + central_extra
    )
    yield central
    cd_offset = offset
    cd_size = len(central)
    end = b""
    if zip64 or cd_offset >= ZIP64_LIMIT:
        zip64_end_offset = cd_offset + cd_size
        end += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, MADE_BY_UNIX | 45, 45, 0, 0, 1, 1, cd_size, cd_offset)
        end += struct.pack("<IIQI", 0x07064B50, 0, zip64_end_offset, 1)
    end += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, cd_size, min(cd_offset, ZIP64_LIMIT), 0)
    yield end


def write_zip(spool: Spool, sink: BinaryIO, mtime: datetime, level: int | None = None) -> ArchiveResult:
    out = HashingWriter(sink)
    for piece in iter_zip(spool.blocks(), MEMBER, mtime, size=spool.size, level=level):
        out.write(piece)
    return out.result()


def write_archive(spool: Spool, sink: BinaryIO, fmt: str, mtime: datetime) -> ArchiveResult:
    """The archive of the spooled ``export.json`` in ``fmt``, written to ``sink``."""
    if check_format(fmt) == "zip":
        return write_zip(spool, sink, mtime)
    return write_tgz(spool, sink, mtime)
