"""The release feed: released versions newest first, each with its exports and the delta from its
predecessor, for one repository or for every repository of an owner.

A subscriber polls this one small document (with ``If-None-Match``: unchanged, it costs a 304)
to learn what there is to take, what it will cost (sizes), how to check it (sha256) and whether
a delta saves it the whole archive. It is a read of versions and their export rows, so it is
made of a fixed number of queries whatever the number of versions: the versions, their item
counts (one grouped count per kind) and their completed exports and deltas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.db.models import QuerySet

from repos.checksums import as_dict
from repos.models import HEAD, Repository, RepositoryVersion
from repos.representation.encoding import iso
from repos.representation.items import CONCEPTS, MAPPINGS

from .delta_archive import export_facts
from .models import Export, ExportState

# absolute_url(path) -> "https://host/path", as the request's host or PUBLIC_BASE_URL says
Absolute = Callable[[str], str]


def released_versions(repositories: QuerySet[Repository]) -> list[RepositoryVersion]:
    """The released, unretired versions of ``repositories``, newest first (as the versions list)."""
    return list(
        RepositoryVersion.objects.filter(repository__in=repositories, released=True, retired=False)
        .exclude(version=HEAD)
        .select_related("repository__owner_org", "repository__owner_user")
        .order_by("-created_on", "-id")
    )


def item_counts(versions: list[RepositoryVersion]) -> dict[int, dict[str, int]]:
    """``{version id: {"concepts": n, "mappings": n}}``, one grouped count per kind."""
    counts: dict[int, dict[str, int]] = {version.pk: {CONCEPTS.key: 0, MAPPINGS.key: 0} for version in versions}
    if not versions:
        return counts
    ids = list(counts)
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        for kind in (CONCEPTS, MAPPINGS):
            cursor.execute(
                f"SELECT repositoryversion_id, COUNT(*) FROM {kind.membership} "
                f"WHERE repositoryversion_id IN ({placeholders}) GROUP BY repositoryversion_id",
                ids,
            )
            for version_id, count in cursor.fetchall():
                counts[version_id][kind.key] = count
    return counts


def completed_archives(versions: list[RepositoryVersion]) -> dict[tuple[int, int | None], list[Export]]:
    """Completed exports (base None) and deltas of ``versions``, by (version id, base id), by format."""
    found: dict[tuple[int, int | None], list[Export]] = defaultdict(list)
    rows = Export.objects.filter(version__in=versions, state=ExportState.COMPLETED).order_by("format")
    for export in rows:
        found[(export.version_id, export.base_id)].append(export)
    return found


def archive_entry(export: Export, url: str) -> dict[str, Any]:
    return {**export_facts(export), "url": url}


def feed_entries(versions: list[RepositoryVersion], absolute: Absolute) -> list[dict[str, Any]]:
    """One entry per version of ``versions`` (newest first), each naming its predecessor: the
    next older released version of its repository, which its delta starts from."""
    counts = item_counts(versions)
    archives = completed_archives(versions)
    predecessors: dict[int, RepositoryVersion | None] = {}
    newer_of: dict[int, RepositoryVersion] = {}
    for version in versions:  # newest first: a version is the predecessor of the one seen before it
        newer = newer_of.get(version.repository_id)
        if newer is not None:
            predecessors[newer.pk] = version
        predecessors[version.pk] = None
        newer_of[version.repository_id] = version
    entries = []
    for version in versions:
        previous = predecessors[version.pk]
        exports = [
            archive_entry(export, absolute(f"{version.url}export/?format={export.format}"))
            for export in archives.get((version.pk, None), [])
        ]
        delta = None
        if previous is not None:
            resource = f"{version.url}export/delta/"
            deltas = [
                archive_entry(
                    export, absolute(f"{resource}?{urlencode({'from': previous.version, 'format': export.format})}")
                )
                for export in archives.get((version.pk, previous.pk), [])
            ]
            delta = {
                "from": previous.version,
                "url": absolute(f"{resource}?{urlencode({'from': previous.version})}"),
                "archives": deltas,
            }
        entries.append(
            {
                "id": version.version,
                "url": absolute(version.url),
                "repository": absolute(version.repository.url),
                "created_on": iso(version.created_on),
                "updated_on": iso(version.updated_on),
                "last_updated": iso(version.get_last_updated()),
                **counts[version.pk],
                # OCL's checksums where computed already (a listing, a delta, ?checksums=true)
                "checksums": as_dict(version.checksum_standard, version.checksum_smart)
                if version.checksum_standard is not None
                else None,
                "previous": previous.version if previous is not None else None,
                "exports": exports,
                "delta": delta,
            }
        )
    return entries


def feed(title: str, url: str, versions: Iterable[RepositoryVersion], absolute: Absolute) -> dict[str, Any]:
    entries = feed_entries(list(versions), absolute)
    return {
        "title": title,
        "url": url,
        "updated": max((entry["updated_on"] for entry in entries if entry["updated_on"]), default=None),
        "entries": entries,
    }
