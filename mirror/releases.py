"""Taking one released version: as a delta from the newest version held when the upstream offers
one, whole otherwise, and in either case proven equal to the upstream's before it commits.

A delta (this service's ``.../:B/export/delta/?from=A``) costs what changed; the whole archive
what the version holds. So the delta is tried first whenever the mirror holds a version to start
from, and the whole archive is the fallback when the upstream has no delta resource (OCL v2),
refuses the pair (no common base), or sends one that cannot be used: damaged bytes (its sha256 is
not the one announced, or its gzip does not read through, still so after the run's retries), a
delta that does not fit the version held here, or one whose result is not the upstream's version.
An upstream that cannot be reached at all fails the run instead: the whole archive would not
come either, and the next run starts again from the delta.

The check: the import and the check are one transaction. After the import, the archive this
service would export for the version is made again in that transaction, hashed as it streams
and written nowhere (``ocl_export.produce.archive_digest``); its sha256 must be the one the
upstream announced for its own export (a delta carries it; an archive's answer announces it in
``Repr-Digest``), or everything rolls back with a :class:`SubscriptionError` that names both. An
upstream that announces nothing (OCL v2, whose archives this service does not reproduce byte for
byte) is checked by ``manage.py verify`` instead, item by item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from django.db import transaction

from ocl_export.produce import archive_digest
from repos.importers import ImportFileError, ImportSummary, import_file
from repos.importers.delta import apply_delta, read_delta_metadata
from repos.importers.loader import UNCHANGED
from repos.importers.versions import VersionError, find_repository

from .client import Damaged, Download, NoDelta, Upstream
from .models import SubscriptionError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Retrying = Callable[[Callable[[], T]], tuple[T, int]]

DELTA = "delta"
WHOLE = "whole"


@dataclass
class Taken:
    """How a released version came: its download, its import, and why a delta was not used."""

    download: Download
    summary: ImportSummary
    attempts: int
    route: str  # DELTA or WHOLE
    checked: str | None  # the sha256 the mirror's export was proven to have (None: nothing announced)
    refused: str | None = None  # why the delta was not taken, when one was tried
    check_seconds: float = 0.0  # of the step's time, what making the sha256 proof took
    fetch_seconds: float = 0.0  # of the step's time, the download of what was taken


def take_release(
    upstream: Upstream, version: str, base: str | None, directory: Path, retrying: Retrying, offers_delta: bool = True
) -> Taken:
    """Bring released ``version`` here, from ``base`` (the newest version held) when it can."""
    refused = None
    if base is not None and offers_delta:
        started = time.monotonic()
        try:
            download, attempts = retrying(lambda: upstream.fetch_delta(version, base, directory))
            fetched = time.monotonic() - started
            summary, checked, seconds = apply_checked_delta(download.path)
            return Taken(download, summary, attempts, DELTA, checked, check_seconds=seconds, fetch_seconds=fetched)
        except NoDelta as exc:
            refused = f"no delta: {exc}"
        except Damaged as exc:
            refused = f"damaged delta refused: {exc}"
        except (ImportFileError, SubscriptionError) as exc:
            refused = f"delta refused: {exc}"
        logger.info(
            "%s: taking %s whole after %.1f s (%s)", upstream.repo_url, version, time.monotonic() - started, refused
        )
    started = time.monotonic()
    download, attempts = retrying(lambda: upstream.fetch_export(version, directory))
    fetched = time.monotonic() - started
    summary, checked, seconds = import_checked(download, version)
    return Taken(download, summary, attempts, WHOLE, checked, refused, seconds, fetched)


def apply_checked_delta(path: Path) -> tuple[ImportSummary, str, float]:
    """Apply the delta at ``path`` and prove the result is its version B, in one transaction."""
    header = read_delta_metadata(path)["delta"]
    export = header["to"].get("export") if isinstance(header["to"].get("export"), dict) else {}
    expected, fmt = export.get("sha256"), export.get("format")
    if not expected or fmt not in ("tgz", "zip"):
        raise ImportFileError(f"{path}: the delta does not carry the sha256 and format of its version's export")
    with transaction.atomic():
        summary = apply_delta(path)
        seconds = check_export(summary, fmt, expected)
    return summary, expected, seconds


def import_checked(download: Download, version: str) -> tuple[ImportSummary, str | None, float]:
    """Import a version's whole archive; when its sha256 was announced, prove the result has it."""
    # A plain "Source" file (no version of its own) takes the upstream's version id.
    if download.announced is None:
        return import_file(download.path, version=version), None, 0.0
    with transaction.atomic():
        summary = import_file(download.path, version=version)
        seconds = check_export(summary, download.kind, download.announced)
    return summary, download.announced, seconds


def check_export(summary: ImportSummary, fmt: str, expected: str) -> float:
    """The mirror's export of the version just written must have ``expected`` as its sha256;
    the seconds the proof took."""
    if summary.status == UNCHANGED:
        return 0.0  # nothing was written; what is here was checked when it was
    started = time.monotonic()
    try:
        version = find_repository(summary.repository).versions.get(version=summary.version)
    except VersionError as exc:  # pragma: no cover - the import has just written it
        raise SubscriptionError(f"{summary.repository}{summary.version}/ is not here after its import ({exc})") from exc
    actual = archive_digest(version, fmt).sha256
    if actual != expected:
        raise SubscriptionError(
            f"{version.url}: the {fmt} export of the version as imported here would have sha256 {actual}, "
            f"the upstream's has {expected}: nothing was applied"
        )
    return time.monotonic() - started
