"""The export pipeline's two routes give the same bytes, and neither publishes anything partial."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from foundation.archive import spooled, write_archive
from ocl_export.produce import SizeMismatch, _piped
from ocl_export.storage import get_storage

MTIME = datetime(2016, 10, 4, 12, 31, 13, tzinfo=UTC)
# uneven chunks around the 1 MiB block size, as batches of items arrive
CHUNKS = [b"{" + b"x" * 700_000, b'"y":' * 300_000, b"z" * (3 << 20), b"}"]
SIZE = sum(len(chunk) for chunk in CHUNKS)


@pytest.mark.parametrize("fmt", ["tgz", "zip"])
def test_it_writes_the_same_archive_piped_or_spooled(fmt):
    piped_sink, spooled_sink = io.BytesIO(), io.BytesIO()
    piped = _piped(iter(CHUNKS), SIZE, piped_sink, fmt, MTIME)
    with spooled(iter(CHUNKS)) as spool:
        from_spool = write_archive(spool, spooled_sink, fmt, MTIME)
    assert piped == from_spool
    assert piped_sink.getvalue() == spooled_sink.getvalue()


def test_it_refuses_a_body_longer_or_shorter_than_announced(s3_bucket):
    client, bucket = s3_bucket
    for wrong in (SIZE - 1, SIZE + 1):
        with pytest.raises(SizeMismatch), get_storage().open_writer("k.tgz", "application/gzip") as sink:
            _piped(iter(CHUNKS), wrong, sink, "tgz", MTIME)
    assert not get_storage().exists("k.tgz")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_it_stops_reading_when_the_upload_fails():
    class BrokenSink(io.BytesIO):
        def write(self, data: bytes) -> int:
            raise OSError("connection reset")

    read: list[int] = []

    def chunks():
        for number in range(1000):
            read.append(number)
            yield b"x" * (1 << 20)

    with pytest.raises(OSError, match="connection reset"):
        _piped(chunks(), 1000 << 20, BrokenSink(), "tgz", MTIME)
    assert len(read) < 1000


def test_it_stops_the_compressor_when_reading_fails():
    def chunks():
        yield b"x" * (2 << 20)
        raise RuntimeError("database went away")

    sink = io.BytesIO()
    with pytest.raises(RuntimeError, match="database went away"):
        _piped(chunks(), 10 << 20, sink, "tgz", MTIME)


class UploadFails(io.RawIOBase):
    """A storage writer whose store went away after the first bytes."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        raise ConnectionError("storage went away")


@pytest.mark.django_db(transaction=True)
def test_a_failing_upload_cancels_the_database_read_instead_of_hanging(org, fs_storage, monkeypatch) -> None:
    """More rows than the pipe and the socket buffers hold: with the consumer gone, PostgreSQL blocks
    writing COPY rows nobody reads, and a rollback behind it would wait for good."""
    import contextlib
    import threading

    from ocl_export import produce
    from repos.representation.rendering import render_all_pending
    from tests.export_support import big_version

    version = big_version(org, 20_000)
    render_all_pending()

    @contextlib.contextmanager
    def failing_writer(key, mime):
        yield UploadFails()

    monkeypatch.setattr(produce, "get_storage", lambda: type("S", (), {"open_writer": staticmethod(failing_writer)})())
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            produce.produce_archive(version, "tgz", "k")
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the export hung behind its own COPY"
    assert isinstance(outcome.get("error"), ConnectionError)
