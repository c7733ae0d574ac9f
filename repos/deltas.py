"""A version delta: what a subscriber holding version A of a repository needs to hold version B.

A new release otherwise costs its whole archive, although a monthly release of a large source
changes a small share of its items. The delta is B's header (its version keys exactly as B's
``export.json`` begins), the items B holds that A does not (whole, in the bytes B's export holds
them), and the items A holds that B holds in no version at all (by id and URL). Applying it to A
(:func:`repos.importers.delta.apply_delta`) gives B, whose export then has the sha256 that this
delta announces.

Both lists are set differences of the two memberships, computed in SQL: each is a keyset walk of
one version's membership probing the other's primary key, so a 100k-item pair costs two index
scans and never holds more than a batch in memory. The items come as their stored renderings
(``repos.representation``), the same text the export and the read API stream.

The byte layout is a contract for other servers (README, "Version deltas"): keep it in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from repos.checksum_store import version_checksums
from repos.models import HEAD, RepositoryVersion
from repos.representation.encoding import dumps, iso
from repos.representation.items import CONCEPTS, MAPPINGS, ItemKind, item_sql, rendered_text
from repos.representation.shapes import SourceInfoCache, version_dict

KINDS = (CONCEPTS, MAPPINGS)
TYPE_NAMES = {CONCEPTS.key: "Concept", MAPPINGS.key: "Mapping"}


class DeltaError(ValueError):
    """Two versions that no delta joins (the message says why, for a 400)."""


def check_pair(older: RepositoryVersion, newer: RepositoryVersion) -> None:
    """Raise :class:`DeltaError` unless ``older`` is an earlier version of ``newer``'s repository."""
    if older.repository_id != newer.repository_id:
        raise DeltaError("A delta joins two versions of one repository; these belong to different repositories.")
    if older.is_head or newer.is_head:
        raise DeltaError("HEAD is the live state of the repository; a delta joins two versions.")
    if older.pk == newer.pk:
        raise DeltaError(f"A delta joins two different versions; both are {newer.version!r}.")
    if (older.created_on, older.pk) > (newer.created_on, newer.pk):
        raise DeltaError(f"Version {older.version!r} is not older than {newer.version!r}; a delta goes forward.")


def predecessor(version: RepositoryVersion) -> RepositoryVersion | None:
    """The released version of ``version``'s repository just before it (the release feed's order:
    created_on, then id): the one a delta to ``version`` is made from when nobody names another."""
    older = Q(created_on__lt=version.created_on) | Q(created_on=version.created_on, pk__lt=version.pk)
    return (
        version.repository.versions.filter(older, released=True, retired=False)
        .exclude(version=HEAD)
        .order_by("-created_on", "-id")
        .first()
    )


def _changed_where(kind: ItemKind) -> str:
    """Rows ``b`` of the newer version that the older one (``%s``) does not hold."""
    member = kind.member_column
    return (
        f"b.repositoryversion_id = %s AND NOT EXISTS (SELECT 1 FROM {kind.membership} a "
        f"WHERE a.repositoryversion_id = %s AND a.{member} = b.{member})"
    )


def _removed_from(kind: ItemKind) -> str:
    """Rows ``a`` of the older version (``%s``) whose item (source, id) the newer one (``%s``,
    twice) holds in no version, joined to their items ``i``. The rows the newer version does
    not hold are found first, by the membership key alone: only those few are looked up by item
    (joining every row of the older version to its item first took seconds at 100k)."""
    member = kind.member_column
    return (
        f"(SELECT a.{member} FROM {kind.membership} a WHERE a.repositoryversion_id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM {kind.membership} b WHERE b.repositoryversion_id = %s AND b.{member} = a.{member}) "
        f"OFFSET 0) AS a JOIN {kind.table} i ON i.id = a.{member} WHERE NOT EXISTS (SELECT 1 FROM "
        f"{kind.membership} b JOIN {kind.table} j ON j.id = b.{member} WHERE b.repositoryversion_id = %s "
        "AND j.source_id = i.source_id AND j.mnemonic = i.mnemonic)"
    )


def _scalar(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


def count_changed(kind: ItemKind, older: RepositoryVersion, newer: RepositoryVersion) -> int:
    return _scalar(f"SELECT COUNT(*) FROM {kind.membership} b WHERE {_changed_where(kind)}", [newer.pk, older.pk])


def count_removed(kind: ItemKind, older: RepositoryVersion, newer: RepositoryVersion) -> int:
    return _scalar(f"SELECT COUNT(*) FROM {_removed_from(kind)}", [older.pk, newer.pk, newer.pk])


def count_held(kind: ItemKind, version: RepositoryVersion) -> int:
    return _scalar(f"SELECT COUNT(*) FROM {kind.membership} WHERE repositoryversion_id = %s", [version.pk])


def _keyset(sql: str, params: list[Any], batch_size: int) -> Iterator[list[tuple]]:
    """Batches of ``sql`` (whose first column is the key, then ``> %s ... LIMIT %s``) in key order."""
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, last, batch_size])
            rows = cursor.fetchall()
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


def changed_items(
    kind: ItemKind, older: RepositoryVersion, newer: RepositoryVersion, batch_size: int
) -> Iterator[list[bytes]]:
    """Batches of the items ``newer`` holds and ``older`` does not, as B's export holds them."""
    member = kind.member_column
    sql = (
        f"SELECT b.{member}, {item_sql()} FROM {kind.membership} b JOIN {kind.table} i ON i.id = b.{member} "
        f"WHERE {_changed_where(kind)} AND b.{member} > %s ORDER BY b.{member} LIMIT %s"
    )
    for rows in _keyset(sql, [newer.pk, older.pk], batch_size):
        yield [rendered_text(kind, pk, text) for pk, text in rows]


def removed_items(
    kind: ItemKind, older: RepositoryVersion, newer: RepositoryVersion, batch_size: int
) -> Iterator[list[dict[str, str]]]:
    """Batches of ``{"type", "id", "url"}`` of the items ``older`` holds and ``newer`` does not."""
    member = kind.member_column
    sql = (
        f"SELECT a.{member}, i.source_id, i.mnemonic FROM {_removed_from(kind)} "
        f"AND a.{member} > %s ORDER BY a.{member} LIMIT %s"
    )
    sources = SourceInfoCache()
    type_name = TYPE_NAMES[kind.key]
    for rows in _keyset(sql, [older.pk, newer.pk, newer.pk], batch_size):
        yield [
            {"type": type_name, "id": mnemonic, "url": f"{sources[source_id].source_url}{kind.key}/{mnemonic}/"}
            for _pk, source_id, mnemonic in rows
        ]


@dataclass(frozen=True)
class DeltaCounts:
    """What a delta holds, counted before it is written (its header says it; progress uses it)."""

    changed: dict[str, int]
    removed: dict[str, int]
    held: dict[str, int]  # what B holds in all

    @property
    def total(self) -> int:
        return sum(self.changed.values()) + sum(self.removed.values())


def count_delta(older: RepositoryVersion, newer: RepositoryVersion) -> DeltaCounts:
    return DeltaCounts(
        changed={kind.key: count_changed(kind, older, newer) for kind in KINDS},
        removed={kind.key: count_removed(kind, older, newer) for kind in KINDS},
        held={kind.key: count_held(kind, newer) for kind in KINDS},
    )


def delta_header(
    older: RepositoryVersion, newer: RepositoryVersion, counts: DeltaCounts, export: dict[str, Any]
) -> dict[str, Any]:
    """The ``"delta"`` object: where it starts, where it leads, and B's full export to check against."""
    return {
        "from": {"id": older.version, "url": older.url, "last_updated": iso(older.get_last_updated())},
        "to": {
            "id": newer.version,
            "url": newer.url,
            "last_updated": iso(newer.get_last_updated()),
            "concepts": counts.held[CONCEPTS.key],
            "mappings": counts.held[MAPPINGS.key],
            # OCL's checksums of B (its items' combined), which the result's must equal too
            "checksums": version_checksums(newer),
            "export": export,
        },
        "changed": counts.changed,
        "removed": counts.removed,
    }


def stream_delta(
    older: RepositoryVersion,
    newer: RepositoryVersion,
    export: dict[str, Any],
    counts: DeltaCounts | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
) -> Iterator[bytes]:
    """The delta's JSON, a batch at a time. ``export`` describes B's full export (format, file
    name, size, sha256): what the result of applying it must match."""
    check_pair(older, newer)
    batch_size = batch_size or settings.EXPORT_BATCH_SIZE
    counts = counts or count_delta(older, newer)
    done = 0
    head = dumps(version_dict(newer))
    yield head[:-1]
    if not newer.repository.is_source:
        # Before the items, unlike an export's: a reader has them with the header in one pass.
        yield b',"references":' + dumps(newer.references or [])
    yield b',"delta":' + dumps(delta_header(older, newer, counts, export))
    for kind in KINDS:
        yield f',"{kind.key}":['.encode()
        separator = b""
        for texts in changed_items(kind, older, newer, batch_size):
            yield separator + b",".join(texts)
            separator = b","
            done += len(texts)
            if on_progress is not None:
                on_progress(done)
        yield b"]"
    yield b',"removed":['
    separator = b""
    for kind in KINDS:
        for entries in removed_items(kind, older, newer, batch_size):
            yield separator + b",".join(dumps(entry) for entry in entries)
            separator = b","
            done += len(entries)
            if on_progress is not None:
                on_progress(done)
    yield b"]}"
