"""The export pipeline: a version's JSON, archived and uploaded to storage.

The job calls :func:`produce_archive`; everything it needs to know about bytes, archive formats
and storage lives in the modules it composes, so this stays a straight line.

Two routes, one result (the same bytes):

- **piped** (PostgreSQL, every item rendered): the exact size of ``export.json`` is read first
  (the tar header needs it), in the same snapshot as the items; then this thread reads each list
  with one COPY while a second thread compresses and uploads it. Nothing touches the local disk, and the
  database read, the compression and the upload overlap.
- **spooled** (SQLite, or rows not rendered yet): the JSON is written to an anonymous temporary
  file first, then archived from it.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO

from django.db import connection, transaction

from foundation.archive import BLOCK, ArchiveResult, content_type, rechunk, spooled, write_archive
from ocl_export.storage import get_storage
from repos.models import RepositoryVersion
from repos.representation.body import body_size, stream_version
from repos.representation.items import EVERYTHING
from repos.representation.rendering import render_all_pending

# How many 1 MiB blocks may wait between the reading and the compressing thread.
PIPE_DEPTH = 8


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while rows stream: the batches are acyclic tuples and strings,
    yet each batch's many new objects trigger collections that scan every live object."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Read the size and the items in one REPEATABLE READ snapshot, so they agree even when an
    import flips ``is_latest_version`` meanwhile. Inside an outer transaction (tests) it reuses it."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def last_updated_of(version: RepositoryVersion) -> datetime:
    """The stamp in the archive's name and its tar mtime: newest item, else the version itself."""
    return version.get_last_updated()


class SizeMismatch(RuntimeError):
    """The JSON written was not as long as announced in the tar header (nothing is published)."""


class PipedSource:
    """What the archive writer reads (``size`` and ``blocks()``), fed from another thread."""

    _END = object()
    _ABORT = object()

    def __init__(self, size: int) -> None:
        self.size = size
        self.pipe: queue.Queue = queue.Queue(maxsize=PIPE_DEPTH)

    def blocks(self) -> Iterator[bytes]:
        written = 0
        while True:
            block = self.pipe.get()
            if block is self._END:
                break
            if block is self._ABORT:
                raise SizeMismatch("the reading side stopped")  # never published: the writer aborts
            written += len(block)
            yield block
        if written != self.size:
            raise SizeMismatch(f"export.json has {written} bytes, {self.size} were announced")

    def feed(self, chunks: Iterable[bytes], consumer: threading.Thread) -> None:
        for block in rechunk(chunks, BLOCK):
            self._put(block, consumer)
        self._put(self._END, consumer)

    def abort(self, consumer: threading.Thread) -> None:
        self._put(self._ABORT, consumer)

    def _put(self, item: object, consumer: threading.Thread) -> None:
        # The consumer may have died (an upload failed): stop reading rows nobody will write.
        while consumer.is_alive():
            try:
                self.pipe.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise ConsumerGone


class ConsumerGone(Exception):
    """The compressing thread has stopped; its own exception says why."""


def _piped(chunks: Iterable[bytes], size: int, sink: BinaryIO, fmt: str, mtime: datetime) -> ArchiveResult:
    source = PipedSource(size)
    outcome: dict[str, object] = {}

    def consume() -> None:
        try:
            outcome["result"] = write_archive(source, sink, fmt, mtime)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            outcome["error"] = exc

    consumer = threading.Thread(target=consume, name="export-compress", daemon=True)
    consumer.start()
    try:
        source.feed(chunks, consumer)
    except ConsumerGone:
        pass  # the consumer's error is raised below
    except BaseException:
        with contextlib.suppress(ConsumerGone):
            source.abort(consumer)
        consumer.join()
        raise
    consumer.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def produce_archive(
    version: RepositoryVersion,
    fmt: str,
    key: str,
    on_progress: Callable[[int], None] | None = None,
    last_updated: datetime | None = None,
    on_activity: Callable[[], None] | None = None,
) -> ArchiveResult:
    """Write ``version``'s export archive in ``fmt`` to storage under ``key``.

    ``on_progress`` is called with the items written so far; ``on_activity`` on other work that
    moves (rendering rows not rendered yet), so that a long quiet stretch means a stuck job.

    On any exception the storage writer discards what it had written (nothing is published) and
    the exception propagates.
    """
    mime = content_type(fmt)  # an unknown format fails before any work
    storage = get_storage()
    return _archive(version, fmt, lambda: storage.open_writer(key, mime), on_progress, last_updated, on_activity)


class _Discard:
    """A sink that keeps nothing: the archive is only hashed."""

    def write(self, data: bytes) -> None:
        pass


def archive_digest(version: RepositoryVersion, fmt: str) -> ArchiveResult:
    """Size and sha256 of the archive :func:`produce_archive` would write, written nowhere.

    The same bytes through the same pipeline, hashed as they pass: a copy of a version (a mirror
    that has just imported it, inside the import's transaction) proves it equals the original by
    this sha256 without holding or storing the archive."""
    content_type(fmt)
    return _archive(version, fmt, lambda: contextlib.nullcontext(_Discard()))


def _archive(
    version: RepositoryVersion,
    fmt: str,
    open_sink: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
    on_progress: Callable[[int], None] | None = None,
    last_updated: datetime | None = None,
    on_activity: Callable[[], None] | None = None,
) -> ArchiveResult:
    mtime = last_updated if last_updated is not None else last_updated_of(version)
    # Rows written by any path that did not render them: do it once, now.
    render_all_pending(on_batch=(lambda _rows: on_activity()) if on_activity is not None else None)
    with gc_paused(), one_snapshot():
        size = body_size(version, EVERYTHING)
        # A known size means every row is rendered in this snapshot: one COPY per list reads them.
        chunks = stream_version(version, EVERYTHING, on_progress, bulk=size is not None)
        # Closed on any failure before the snapshot's transaction rolls back: closing ends (cancels)
        # a COPY still under way. Left open, the rollback would wait behind a server blocked writing
        # rows that nobody reads any more, and the job would hang for good.
        with contextlib.closing(chunks):
            if size is not None:
                with open_sink() as sink:
                    return _piped(chunks, size, sink, fmt, mtime)
            with spooled(chunks) as spool, open_sink() as sink:
                return write_archive(spool, sink, fmt, mtime)
