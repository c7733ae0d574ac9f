"""The export pipeline: a version's JSON, spooled to disk, archived, uploaded to storage.

The job calls :func:`produce_archive`; everything it needs to know about bytes, archive formats
and storage lives in the modules it composes, so this stays a straight line.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from ocl_export.archive import ArchiveResult, content_type, spooled, write_archive
from ocl_export.storage import get_storage
from repos.models import RepositoryVersion
from repos.representation import EVERYTHING, stream_version


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while rows stream: the batches are acyclic tuples, dicts and
    bytes, yet each batch's tens of thousands of new containers trigger collections that scan every
    live object; pausing it measured 12.3 s -> 8.8 s for reading 1 M items."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def last_updated_of(version: RepositoryVersion) -> datetime:
    """The stamp in the archive's name and its tar mtime: newest item, else the version itself."""
    return version.get_last_updated()


def produce_archive(
    version: RepositoryVersion,
    fmt: str,
    key: str,
    on_progress: Callable[[int], None] | None = None,
    last_updated: datetime | None = None,
) -> ArchiveResult:
    """Write ``version``'s export archive in ``fmt`` to storage under ``key``.

    The whole JSON is read from the database into a spool file before the upload starts, so a
    slow or failing database read never holds an open upload. On any exception the writer
    discards what it had written (nothing is published) and the exception propagates; the
    spool file is removed in every case.
    """
    mime = content_type(fmt)  # an unknown format fails before any work
    mtime = last_updated if last_updated is not None else last_updated_of(version)
    storage = get_storage()
    with gc_paused(), spooled(stream_version(version, EVERYTHING, on_progress)) as spool:
        with storage.open_writer(key, mime) as sink:
            return write_archive(spool, sink, fmt, mtime)
