"""The archive of a version delta, produced by the export job.

A delta is an :class:`~ocl_export.models.Export` row whose ``base`` is set: the same queue, job,
heartbeat, state machine, reaper, one-use Location and storage as an export, so nothing about
running it is new. Only what the job writes differs: ``repos.deltas``' JSON instead of the
version's, spooled to a temporary file (a delta is small; the spool keeps it off the heap
whatever its size) and archived by the same deterministic writer, so its bytes are reproducible.

The delta announces the sha256 of B's full export in the same format, which the subscriber
checks its result against, so that export must be completed first: the request side makes sure
of it, and a job that finds it gone fails for good (a POST then makes both again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from foundation.archive import ArchiveResult, archive_file_name, as_utc, content_type, spooled, write_archive
from repos.checksum_store import version_checksums
from repos.deltas import DeltaCounts, check_pair, count_delta, stream_delta
from repos.models import RepositoryVersion
from repos.representation.encoding import iso
from repos.representation.rendering import render_all_pending

from .models import Export, ExportState
from .produce import one_snapshot
from .storage import get_storage


class FullExportMissing(RuntimeError):
    """B's full export is not completed: the delta cannot say what its result must hash to."""


def full_export(version: RepositoryVersion, fmt: str) -> Export | None:
    """The completed export of ``version`` in ``fmt`` (not a delta), or None."""
    return Export.objects.filter(version=version, base=None, format=fmt, state=ExportState.COMPLETED).first()


def export_facts(export: Export) -> dict[str, Any]:
    """What a delta (and the release feed) says of a full export: enough to check a result."""
    return {
        "format": export.format,
        "file_name": export.file_name,
        "size": export.size,
        "sha256": export.sha256,
        "last_updated": iso(export.last_updated),
    }


def delta_file_name(repo: str, older: str, newer: str, last_updated: datetime, fmt: str) -> str:
    """``CIEL_v2.20161004123113.delta-v1.tgz``: B's export name with ``delta-<A>`` before the
    extension, so it never equals nor prefixes an export's key, and two bases never collide."""
    name = archive_file_name(repo, newer, as_utc(last_updated), fmt)
    return f"{name[: -len(fmt) - 1]}.delta-{older}.{fmt}"


@dataclass(frozen=True)
class DeltaPlan:
    older: RepositoryVersion
    newer: RepositoryVersion
    fmt: str
    facts: dict[str, Any]
    counts: DeltaCounts
    file_name: str

    @property
    def total(self) -> int:
        return self.counts.total

    def produce(self, key: str, on_progress: Callable[[int], None] | None = None) -> ArchiveResult:
        """Write the delta archive to storage under ``key`` (nothing is published on failure)."""
        mime = content_type(self.fmt)
        with one_snapshot():
            chunks = stream_delta(self.older, self.newer, self.facts, self.counts, on_progress)
            with contextlib.closing(chunks), spooled(chunks) as spool:
                with get_storage().open_writer(key, mime) as sink:
                    return write_archive(spool, sink, self.fmt, self.newer.get_last_updated())


def plan_delta(export: Export) -> DeltaPlan:
    """What the job of a delta row writes. Raises FullExportMissing or DeltaError (both permanent)."""
    older, newer = export.base, export.version
    assert older is not None
    check_pair(older, newer)
    full = full_export(newer, export.format)
    if full is None:
        raise FullExportMissing(f"the {export.format} export of {newer.version} is not there; request it first")
    render_all_pending()  # rows written by a path that did not render them (as an export does)
    version_checksums(newer)  # computed and stored now, outside the snapshot the delta is read in
    return DeltaPlan(
        older=older,
        newer=newer,
        fmt=export.format,
        facts=export_facts(full),
        counts=count_delta(older, newer),
        file_name=delta_file_name(
            newer.repository.mnemonic, older.version, newer.version, newer.get_last_updated(), export.format
        ),
    )
