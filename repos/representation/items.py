"""Item queries: which concepts and mappings a version holds, read as their stored JSON text.

:data:`CONCEPTS` and :data:`MAPPINGS` say where each kind's rows, memberships and import staging
live and which columns a row has (the importer writes them, the representation reads them).
:class:`ItemFilter` is what the read API's query parameters select. Rows are read with plain SQL
in keyset batches by row id; a row not rendered yet (see :mod:`repos.representation.rendering`)
is built from its columns on the fly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection

try:  # psycopg's C loader when its binary package is installed
    from psycopg.types.datetime import TimestamptzLoader as C_TIMESTAMPTZ_LOADER
except ImportError:  # SQLite-only installs
    C_TIMESTAMPTZ_LOADER = None

from repos.models import ConceptVersion, MappingVersion, RepositoryVersion
from repos.representation.encoding import DUMPS_OPTIONS
from repos.representation.shapes import SourceInfoCache, concept_item, mapping_item

# What an import writes for each row after its source (in this order, the staging tables' too);
# the representation reads the same columns but the checksum, after the row's id and source.
CONCEPT_FIELDS = (
    "mnemonic", "uuid", "external_id", "concept_class", "datatype", "display_name", "display_locale",
    "names", "descriptions", "extras", "retired", "retire_reason", "created_on", "updated_on",
    "version_created_on", "version_created_by", "update_comment", "is_latest_version",
    "previous_version_uuid", "checksum",
)  # fmt: skip
MAPPING_FIELDS = (
    "mnemonic", "uuid", "external_id", "retired", "retire_reason", "map_type", "from_concept_code",
    "from_concept_name", "from_concept_url", "to_concept_code", "to_concept_name", "to_concept_url",
    "from_source_owner", "from_source_owner_type", "from_source_url", "from_source_name", "to_source_owner",
    "to_source_owner_type", "to_source_url", "to_source_name", "sort_weight", "extras", "update_comment",
    "created_on", "updated_on", "created_by", "updated_by", "is_latest_version", "checksum",
)  # fmt: skip


@dataclass(frozen=True)
class ItemKind:
    """Concepts or mappings: where their rows, memberships and import staging rows live, the
    fields an import writes, and how a row of :attr:`columns` becomes the contract's dict."""

    key: str  # "concepts" / "mappings"
    table: str
    membership: str
    member_column: str
    staging: str  # the temporary table an import streams rows into (repos.importers.staging)
    fields: tuple[str, ...]
    build: Callable[[tuple, SourceInfoCache], dict[str, Any]]
    columns: tuple[str, ...] = field(init=False)  # what the representation reads, in this order

    def __post_init__(self) -> None:
        # the row's id and source, then what the import wrote but the checksum (no part of the JSON)
        fields = tuple(name for name in self.fields if name != "checksum")
        object.__setattr__(self, "columns", ("id", "source_id", *fields))

    @property
    def staged_columns(self) -> tuple[str, ...]:
        return ("ord", "source_id", *self.fields)


CONCEPTS = ItemKind(
    "concepts",
    ConceptVersion._meta.db_table,
    "repos_version_concepts",
    "conceptversion_id",
    "import_staged_concepts",
    CONCEPT_FIELDS,
    concept_item,
)
MAPPINGS = ItemKind(
    "mappings",
    MappingVersion._meta.db_table,
    "repos_version_mappings",
    "mappingversion_id",
    "import_staged_mappings",
    MAPPING_FIELDS,
    mapping_item,
)
KINDS = {kind.key: kind for kind in (CONCEPTS, MAPPINGS)}


@dataclass(frozen=True)
class ItemFilter:
    """What the read API's query parameters select; the export uses :data:`EVERYTHING`."""

    include_concepts: bool = False
    include_mappings: bool = False
    include_retired: bool = False
    updated_since: datetime | None = None
    offset: int = 0
    limit: int | None = None  # None: everything


EVERYTHING = ItemFilter(include_concepts=True, include_mappings=True, include_retired=True)


def where_clause(kind: ItemKind, version_id: int, item_filter: ItemFilter) -> tuple[str, list[Any]]:
    """The condition (on membership ``m`` and item ``i``) and its parameters for a version's items."""
    clauses = ["m.repositoryversion_id = %s"]
    params: list[Any] = [version_id]
    if not item_filter.include_retired:
        clauses.append("i.retired = %s")
        params.append(False)
    if item_filter.updated_since is not None:
        clauses.append("i.updated_on >= %s")
        params.append(item_filter.updated_since)
    return " AND ".join(clauses), params


def member_id_range(cursor: Any, kind: ItemKind, version_id: int) -> tuple[int | None, int | None]:
    """The lowest and highest item id a version holds of one kind ((None, None) when it holds none):
    the bounds that keep a merge join over the item table to the version's own stretch of it."""
    cursor.execute(
        f"SELECT MIN({kind.member_column}), MAX({kind.member_column}) FROM {kind.membership} "
        "WHERE repositoryversion_id = %s",
        [version_id],
    )
    return cursor.fetchone()


def use_fast_loaders(cursor: Any) -> None:
    """Decode timestamps with psycopg's C loader on this cursor.

    Django registers a pure-Python timestamptz loader on PostgreSQL connections (about 7 us a
    value: the largest single cost of an export). The session time zone is UTC, so the C loader
    gives the same instants. Registered per cursor: on the connection it breaks Django's cursors.
    """
    if C_TIMESTAMPTZ_LOADER is not None and connection.vendor == "postgresql":
        cursor.cursor.adapters.register_loader("timestamptz", C_TIMESTAMPTZ_LOADER)


def count_items(kind: ItemKind, version: RepositoryVersion, item_filter: ItemFilter) -> int:
    where, params = where_clause(kind, version.pk, item_filter)
    sql = f"SELECT COUNT(*) FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} WHERE {where}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def stored_json_sql(head: str = "i.json_head", latest: str = "i.is_latest_version", tail: str = "i.json_tail") -> str:
    """SQL for an item's stored JSON: its two rendered halves around ``is_latest_version``.

    Only that flag can change after a row is written, so it alone is read at export time; a row
    not rendered yet gives NULL and is rendered on the fly (see :func:`fill_unrendered`).
    """
    return f"{head} || CASE WHEN {latest} THEN 'true' ELSE 'false' END || {tail}"


def iter_rows(
    kind: ItemKind, version: RepositoryVersion, item_filter: ItemFilter, batch_size: int | None = None
) -> Iterator[list[tuple[int, str]]]:
    """Batches of ``(row id, item JSON text)`` in a fixed order (by row id), read by keyset."""
    batch_size = batch_size or settings.EXPORT_BATCH_SIZE
    where, base_params = where_clause(kind, version.pk, item_filter)
    sql = (
        f"SELECT i.id, {stored_json_sql()} FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
        # The same bound on both sides of the join: without i.id's, PostgreSQL may merge-join from
        # the item table's first row on every batch, which makes a full read quadratic.
        f"WHERE {where} AND m.{kind.member_column} > %s AND i.id > %s ORDER BY m.{kind.member_column} LIMIT %s"
    )
    remaining = item_filter.limit
    offset = item_filter.offset
    last_id = 0
    if offset:
        # Skip to the offset once, then continue by keyset.
        skip_sql = (
            f"SELECT m.{kind.member_column} FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
            f"WHERE {where} ORDER BY m.{kind.member_column} LIMIT 1 OFFSET %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(skip_sql, [*base_params, offset - 1])
            found = cursor.fetchone()
        if found is None:
            return
        last_id = found[0]
    while remaining is None or remaining > 0:
        size = batch_size if remaining is None else min(batch_size, remaining)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*base_params, last_id, last_id, size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield fill_unrendered(kind, rows)
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < size:
            return
        last_id = rows[-1][0]


def fill_unrendered(kind: ItemKind, rows: list[tuple[int, str | None]]) -> list[tuple[int, str]]:
    missing = [pk for pk, text in rows if text is None]
    if not missing:
        return rows  # type: ignore[return-value]
    rendered = {pk: orjson.dumps(item, option=DUMPS_OPTIONS).decode() for pk, item in _dynamic_items(kind, missing)}
    return [(pk, text if text is not None else rendered[pk]) for pk, text in rows]


def _dynamic_items(kind: ItemKind, pks: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Items built from their columns: the fallback for rows not rendered yet."""
    sources = SourceInfoCache()
    for row in full_rows(kind, pks):
        yield row[0], kind.build(row, sources)


def full_rows(kind: ItemKind, pks: list[int]) -> Iterator[tuple]:
    columns = ", ".join(f"i.{column}" for column in kind.columns)
    for start in range(0, len(pks), 1000):
        chunk = pks[start : start + 1000]
        placeholders = ", ".join(["%s"] * len(chunk))
        with connection.cursor() as cursor:
            use_fast_loaders(cursor)
            cursor.execute(f"SELECT {columns} FROM {kind.table} i WHERE i.id IN ({placeholders})", chunk)
            yield from cursor.fetchall()


def item_sql() -> str:
    """SQL for an item's JSON text from the row aliased ``i``: NULL when it is not rendered yet
    (then :func:`rendered_text` renders it)."""
    return stored_json_sql()


def rendered_text(kind: ItemKind, pk: int, text: str | None) -> bytes:
    """The bytes of one item read with :func:`item_sql`."""
    return fill_unrendered(kind, [(pk, text)])[0][1].encode()


def member_bytes(kind: ItemKind, version_id: int, mnemonic: str) -> bytes | None:
    """Item ``mnemonic`` as the version holds it (its newest row there), in exactly the bytes it has
    inside the version; None when the version holds no such item. One query."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.id, {stored_json_sql()} FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
            "WHERE m.repositoryversion_id = %s AND i.mnemonic = %s ORDER BY i.id DESC LIMIT 1",
            [version_id, mnemonic],
        )
        rows = cursor.fetchall()
    return fill_unrendered(kind, rows)[0][1].encode() if rows else None


def item_bytes(kind: ItemKind, pk: int) -> bytes:
    """One concept or mapping version, in exactly the bytes it has inside a version."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT i.id, {stored_json_sql()} FROM {kind.table} i WHERE i.id = %s", [pk])
        rows = cursor.fetchall()
    return fill_unrendered(kind, rows)[0][1].encode()
