"""The one representation of OCL JSON: versions, repositories, concepts, mappings.

Both the read API (``GET .../:version/?includeConcepts=true...``) and the export job call
:func:`stream_version`, so the archive's ``export.json`` equals the REST body by construction.

The hot path reads rows with plain SQL in keyset batches (no model instances), takes names,
descriptions and extras as stored JSON text (``orjson.Fragment``, never parsed), and yields
bytes batch by batch: memory stays flat whatever the version's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction

try:  # psycopg's C loader when its binary package is installed
    from psycopg.types.datetime import TimestamptzLoader as C_TIMESTAMPTZ_LOADER
except ImportError:  # SQLite-only installs
    C_TIMESTAMPTZ_LOADER = None

from repos.copy_out import copy_joined
from repos.models import ConceptVersion, MappingVersion, Repository, RepositoryVersion

DUMPS_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def dumps(value: Any) -> bytes:
    """JSON bytes; datetimes as ISO 8601 in UTC with ``Z`` (naive ones are taken as UTC)."""
    return orjson.dumps(value, option=DUMPS_OPTIONS)


_ZERO = timedelta(0)


def utc(value: datetime | None) -> datetime | None:
    """The same instant in UTC (naive values are UTC already), so every timestamp ends in ``Z``."""
    if value is None or value.tzinfo is None or value.utcoffset() == _ZERO:
        return value
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else dumps(value)[1:-1].decode()


# --- names and descriptions: one canonical shape, applied when they are written --------------

NAME_KEYS = ("uuid", "name", "external_id", "type", "locale", "locale_preferred", "name_type")
DESCRIPTION_KEYS = ("uuid", "description", "external_id", "type", "locale", "locale_preferred", "description_type")


def _canonical_localized(items: Iterable[dict] | None, keys: tuple[str, ...], type_name: str) -> list[dict]:
    out = []
    for item in items or []:
        row = {key: item.get(key) for key in keys}
        row["type"] = type_name
        row["locale_preferred"] = bool(item.get("locale_preferred") or False)
        out.append(row)
    return out


def names_json(names: Iterable[dict] | None) -> str:
    """The stored JSON text of a concept's names, keys in the contract's order."""
    return orjson.dumps(_canonical_localized(names, NAME_KEYS, "ConceptName")).decode()


def descriptions_json(descriptions: Iterable[dict] | None) -> str:
    return orjson.dumps(_canonical_localized(descriptions, DESCRIPTION_KEYS, "ConceptDescription")).decode()


def extras_json(extras: dict | None) -> str:
    """Extras are always an object (v1 files may say null)."""
    return orjson.dumps(extras if isinstance(extras, dict) else {}, option=orjson.OPT_SORT_KEYS).decode()


# --- owners and repositories ----------------------------------------------------------------


@dataclass(frozen=True)
class SourceInfo:
    """What every item of one source repeats: computed once per source, not once per row."""

    source: str
    source_url: str
    owner: str
    owner_type: str
    owner_url: str


def source_info(repository: Repository) -> SourceInfo:
    return SourceInfo(
        source=repository.mnemonic,
        source_url=repository.url,
        owner=repository.owner_mnemonic,
        owner_type=repository.owner_type,
        owner_url=repository.owner_url,
    )


class SourceInfoCache(dict):
    def __missing__(self, source_id: int) -> SourceInfo:
        info = source_info(Repository.objects.select_related("owner_org", "owner_user").get(pk=source_id))
        self[source_id] = info
        return info


def repository_dict(repository: Repository) -> dict[str, Any]:
    """A source or collection (its live HEAD metadata), as nested in a version and at its URL."""
    url = repository.url
    return {
        "type": repository.type_label,
        "uuid": repository.uuid,
        "id": repository.mnemonic,
        "short_code": repository.mnemonic,
        "name": repository.name,
        "full_name": repository.full_name,
        "description": repository.description,
        f"{repository.type_label.lower()}_type": repository.type_name,
        "custom_validation_schema": repository.custom_validation_schema,
        "public_access": repository.public_access,
        "default_locale": repository.default_locale,
        "supported_locales": repository.supported_locales,
        "website": repository.website,
        "url": url,
        "owner": repository.owner_mnemonic,
        "owner_type": repository.owner_type,
        "owner_url": repository.owner_url,
        "created_on": utc(repository.created_on),
        "updated_on": utc(repository.updated_on),
        "created_by": repository.created_by,
        "updated_by": repository.updated_by,
        "extras": repository.extras if isinstance(repository.extras, dict) else {},
        "external_id": repository.external_id,
        "versions_url": f"{url}versions/",
        "concepts_url": f"{url}concepts/",
        "mappings_url": f"{url}mappings/",
    }


def version_dict(version: RepositoryVersion) -> dict[str, Any]:
    """A repository version's own keys, in the contract's order, ending with the nested repository."""
    repository = version.repository
    label = repository.type_label
    url = repository.url
    version_url = version.url
    previous = version.previous_version
    return {
        "type": f"{label} Version",
        "uuid": version.uuid,
        "id": version.version,
        "short_code": repository.mnemonic,
        "name": repository.name,
        "full_name": repository.full_name,
        "description": version.description,
        f"{label.lower()}_type": repository.type_name,
        "custom_validation_schema": repository.custom_validation_schema,
        "public_access": repository.public_access,
        "default_locale": repository.default_locale,
        "supported_locales": repository.supported_locales,
        "website": repository.website,
        "url": url,
        "owner": repository.owner_mnemonic,
        "owner_type": repository.owner_type,
        "owner_url": repository.owner_url,
        "retired": version.retired,
        "version_url": version_url,
        "previous_version_url": previous.url if previous is not None else version.previous_version_url,
        "created_on": utc(version.created_on),
        "updated_on": utc(version.updated_on),
        "created_by": version.created_by,
        "updated_by": version.updated_by,
        "extras": version.extras if isinstance(version.extras, dict) else {},
        "external_id": version.external_id,
        "version": version.version,
        "released": version.released,
        "concepts_url": f"{version_url}concepts/",
        "mappings_url": f"{version_url}mappings/",
        label.lower(): repository_dict(repository),
    }


def versions_list_item(version: RepositoryVersion) -> dict[str, Any]:
    """An entry of ``GET .../versions``: the version without its nested repository."""
    data = version_dict(version)
    data.pop(version.repository.type_label.lower())
    return data


# --- concepts and mappings: SQL columns and the dicts built from them ------------------------

CONCEPT_COLUMNS = (
    "id", "source_id", "mnemonic", "uuid", "external_id", "concept_class", "datatype", "display_name",
    "display_locale", "names", "descriptions", "extras", "retired", "retire_reason", "created_on",
    "updated_on", "version_created_on", "version_created_by", "update_comment", "is_latest_version",
    "previous_version_uuid",
)  # fmt: skip

MAPPING_COLUMNS = (
    "id", "source_id", "mnemonic", "uuid", "external_id", "retired", "retire_reason", "map_type",
    "from_concept_code", "from_concept_name", "from_concept_url", "to_concept_code", "to_concept_name",
    "to_concept_url", "from_source_owner", "from_source_owner_type", "from_source_url", "from_source_name",
    "to_source_owner", "to_source_owner_type", "to_source_url", "to_source_name", "sort_weight", "extras",
    "update_comment", "created_on", "updated_on", "created_by", "updated_by", "is_latest_version",
)  # fmt: skip

Fragment = orjson.Fragment


def concept_item(row: tuple, sources: SourceInfoCache) -> dict[str, Any]:
    (
        _pk, source_id, mnemonic, uuid, external_id, concept_class, datatype, display_name, display_locale,
        names, descriptions, extras, retired, retire_reason, created_on, updated_on, version_created_on,
        version_created_by, update_comment, is_latest_version, previous_version_uuid,
    ) = row  # fmt: skip
    info = sources[source_id]
    url = f"{info.source_url}concepts/{mnemonic}/"
    return {
        "type": "Concept",
        "uuid": uuid,
        "id": mnemonic,
        "external_id": external_id,
        "concept_class": concept_class,
        "datatype": datatype,
        "display_name": display_name,
        "display_locale": display_locale,
        "names": Fragment(names),
        "descriptions": Fragment(descriptions),
        "extras": Fragment(extras),
        "retired": bool(retired),
        "retire_reason": retire_reason,
        "source": info.source,
        "source_url": info.source_url,
        "owner": info.owner,
        "owner_type": info.owner_type,
        "owner_url": info.owner_url,
        "version": uuid,
        "created_on": utc(created_on),
        "updated_on": utc(updated_on),
        "version_created_on": utc(version_created_on),
        "version_created_by": version_created_by,
        "update_comment": update_comment,
        "is_latest_version": bool(is_latest_version),
        "url": url,
        "version_url": f"{url}{uuid}/",
        "previous_version_url": f"{url}{previous_version_uuid}/" if previous_version_uuid else None,
    }


def mapping_item(row: tuple, sources: SourceInfoCache) -> dict[str, Any]:
    (
        _pk, source_id, mnemonic, uuid, external_id, retired, retire_reason, map_type,
        from_concept_code, from_concept_name, from_concept_url, to_concept_code, to_concept_name,
        to_concept_url, from_source_owner, from_source_owner_type, from_source_url, from_source_name,
        to_source_owner, to_source_owner_type, to_source_url, to_source_name, sort_weight, extras,
        update_comment, created_on, updated_on, created_by, updated_by, is_latest_version,
    ) = row  # fmt: skip
    info = sources[source_id]
    url = f"{info.source_url}mappings/{mnemonic}/"
    return {
        "type": "Mapping",
        "uuid": uuid,
        "id": mnemonic,
        "external_id": external_id,
        "retired": bool(retired),
        "retire_reason": retire_reason,
        "map_type": map_type,
        "source": info.source,
        "owner": info.owner,
        "owner_type": info.owner_type,
        "owner_url": info.owner_url,
        "from_concept_code": from_concept_code,
        "from_concept_name": from_concept_name,
        "from_concept_url": from_concept_url,
        "to_concept_code": to_concept_code,
        "to_concept_name": to_concept_name,
        "to_concept_url": to_concept_url,
        "from_source_owner": from_source_owner,
        "from_source_owner_type": from_source_owner_type,
        "from_source_url": from_source_url,
        "from_source_name": from_source_name,
        "to_source_owner": to_source_owner,
        "to_source_owner_type": to_source_owner_type,
        "to_source_url": to_source_url,
        "to_source_name": to_source_name,
        "url": url,
        "version": uuid,
        "version_url": f"{url}{uuid}/",
        "is_latest_version": bool(is_latest_version),
        "sort_weight": sort_weight,
        "extras": Fragment(extras),
        "update_comment": update_comment,
        "created_on": utc(created_on),
        "updated_on": utc(updated_on),
        "created_by": created_by,
        "updated_by": updated_by,
    }


@dataclass(frozen=True)
class ItemKind:
    key: str  # "concepts" / "mappings"
    table: str
    membership: str
    member_column: str
    columns: tuple[str, ...]
    build: Callable[[tuple, SourceInfoCache], dict[str, Any]]


CONCEPTS = ItemKind(
    "concepts",
    ConceptVersion._meta.db_table,
    "repos_version_concepts",
    "conceptversion_id",
    CONCEPT_COLUMNS,
    concept_item,
)
MAPPINGS = ItemKind(
    "mappings",
    MappingVersion._meta.db_table,
    "repos_version_mappings",
    "mappingversion_id",
    MAPPING_COLUMNS,
    mapping_item,
)


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


def _where(kind: ItemKind, version_id: int, item_filter: ItemFilter) -> tuple[str, list[Any]]:
    clauses = ["m.repositoryversion_id = %s"]
    params: list[Any] = [version_id]
    if not item_filter.include_retired:
        clauses.append("i.retired = %s")
        params.append(False)
    if item_filter.updated_since is not None:
        clauses.append("i.updated_on >= %s")
        params.append(item_filter.updated_since)
    return " AND ".join(clauses), params


def use_fast_loaders(cursor: Any) -> None:
    """Decode timestamps with psycopg's C loader on this cursor.

    Django registers a pure-Python timestamptz loader on PostgreSQL connections (about 7 us a
    value: the largest single cost of an export). The session time zone is UTC, so the C loader
    gives the same instants. Registered per cursor: on the connection it breaks Django's cursors.
    """
    if C_TIMESTAMPTZ_LOADER is not None and connection.vendor == "postgresql":
        cursor.cursor.adapters.register_loader("timestamptz", C_TIMESTAMPTZ_LOADER)


def count_items(kind: ItemKind, version: RepositoryVersion, item_filter: ItemFilter) -> int:
    where, params = _where(kind, version.pk, item_filter)
    sql = f"SELECT COUNT(*) FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} WHERE {where}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _render_sql(head: str = "i.json_head", latest: str = "i.is_latest_version", tail: str = "i.json_tail") -> str:
    """SQL for an item's stored JSON: its two rendered halves around ``is_latest_version``.

    Only that flag can change after a row is written, so it alone is read at export time; a row
    not rendered yet gives NULL and is rendered on the fly (see :func:`_fill_unrendered`).
    """
    return f"{head} || CASE WHEN {latest} THEN 'true' ELSE 'false' END || {tail}"


def iter_rows(
    kind: ItemKind, version: RepositoryVersion, item_filter: ItemFilter, batch_size: int | None = None
) -> Iterator[list[tuple[int, str]]]:
    """Batches of ``(row id, item JSON text)`` in a fixed order (by row id), read by keyset."""
    batch_size = batch_size or settings.EXPORT_BATCH_SIZE
    where, base_params = _where(kind, version.pk, item_filter)
    sql = (
        f"SELECT i.id, {_render_sql()} FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
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
        yield _fill_unrendered(kind, rows)
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < size:
            return
        last_id = rows[-1][0]


def _fill_unrendered(kind: ItemKind, rows: list[tuple[int, str | None]]) -> list[tuple[int, str]]:
    missing = [pk for pk, text in rows if text is None]
    if not missing:
        return rows  # type: ignore[return-value]
    rendered = {pk: orjson.dumps(item, option=DUMPS_OPTIONS).decode() for pk, item in _dynamic_items(kind, missing)}
    return [(pk, text if text is not None else rendered[pk]) for pk, text in rows]


def _dynamic_items(kind: ItemKind, pks: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Items built from their columns: the fallback for rows not rendered yet."""
    sources = SourceInfoCache()
    for row in _full_rows(kind, pks):
        yield row[0], kind.build(row, sources)


def _full_rows(kind: ItemKind, pks: list[int]) -> Iterator[tuple]:
    columns = ", ".join(f"i.{column}" for column in kind.columns)
    for start in range(0, len(pks), 1000):
        chunk = pks[start : start + 1000]
        placeholders = ", ".join(["%s"] * len(chunk))
        with connection.cursor() as cursor:
            use_fast_loaders(cursor)
            cursor.execute(f"SELECT {columns} FROM {kind.table} i WHERE i.id IN ({placeholders})", chunk)
            yield from cursor.fetchall()


# A byte that orjson never writes inside JSON text (it escapes control characters), used to
# split an item's rendering around its one mutable value.
_LATEST_MARK = Fragment(b"\x00")


def render_parts(kind: ItemKind, row: tuple, sources: Mapping[int, SourceInfo]) -> tuple[str, str, int]:
    """An item's stored rendering: its JSON text before and after the value of is_latest_version,
    and their length in bytes. ``row`` is in ``kind.columns`` order (the importer passes rows it is
    about to write)."""
    item = kind.build(row, sources)
    item["is_latest_version"] = _LATEST_MARK
    rendered = orjson.dumps(item, option=DUMPS_OPTIONS)
    head, tail = rendered.split(b"\x00")
    return head.decode(), tail.decode(), len(rendered) - 1


def render_pending(kind: ItemKind, batch_size: int = 5000, on_batch: Callable[[int], None] | None = None) -> int:
    """Store the rendered JSON of every row of ``kind`` that has none yet; returns the count.

    Items are immutable but for ``is_latest_version``, so writers (the importer, version
    snapshots, tests' factories) call this once after writing rows, and exports then stream
    stored text instead of building each item again: this is what keeps an export near the cost
    of reading its rows.
    """
    done = 0
    last_id = 0
    sources = SourceInfoCache()
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {kind.table} WHERE json_head IS NULL AND id > %s ORDER BY id LIMIT %s",
                [last_id, batch_size],
            )
            pks = [row[0] for row in cursor.fetchall()]
        if not pks:
            return done
        updates = [(*render_parts(kind, row, sources), row[0]) for row in _full_rows(kind, pks)]
        _store_renderings(kind, updates)
        done += len(updates)
        last_id = pks[-1]
        if on_batch is not None:
            on_batch(len(updates))  # a sign of life for whoever waits (an export's heartbeat)


def _store_renderings(kind: ItemKind, updates: list[tuple[str, str, int, int]]) -> None:
    """Write ``(head, tail, size, id)`` rows: COPY and one UPDATE on PostgreSQL, else row by row."""
    # atomic: the temporary table lives until the end of this transaction, even in autocommit
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.executemany(
                f"UPDATE {kind.table} SET json_head = %s, json_tail = %s, json_size = %s WHERE id = %s", updates
            )
            return
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS rendered_items "
            "(json_head text, json_tail text, json_size integer, id bigint) ON COMMIT DROP"
        )
        with cursor.cursor.copy("COPY rendered_items FROM STDIN") as copy:
            for row in updates:
                copy.write_row(row)
        cursor.execute(
            f"UPDATE {kind.table} AS i SET json_head = r.json_head, json_tail = r.json_tail, json_size = r.json_size "
            "FROM rendered_items AS r WHERE i.id = r.id"
        )
        cursor.execute("TRUNCATE rendered_items")


def render_all_pending(on_batch: Callable[[int], None] | None = None) -> int:
    return render_pending(CONCEPTS, on_batch=on_batch) + render_pending(MAPPINGS, on_batch=on_batch)


def iter_item_chunks(
    kind: ItemKind,
    version: RepositoryVersion,
    item_filter: ItemFilter,
    batch_size: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The items of one list as comma-separated JSON bytes, a batch at a time (no brackets)."""
    separator = ""
    for rows in iter_rows(kind, version, item_filter, batch_size):
        yield (separator + ",".join([text for _pk, text in rows])).encode()
        separator = ","
        if on_batch is not None:
            on_batch(len(rows))


COPY_BLOCK = 1 << 20


def copy_item_chunks(
    kind: ItemKind,
    version: RepositoryVersion,
    item_filter: ItemFilter,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The same bytes as :func:`iter_item_chunks`, from one ``COPY ... TO STDOUT`` (PostgreSQL).

    Only for rows that are all rendered: the caller checks that (:func:`body_size` is not None)
    in the same snapshot. One statement streams the whole list, so the server walks the two
    indexes once in a merge join instead of once per keyset batch, and each rendering arrives
    as stored (see :mod:`repos.copy_out`): joining them with commas is the only work left here.
    """
    where, params = _where(kind, version.pk, item_filter)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MIN({kind.member_column}), MAX({kind.member_column}) FROM {kind.membership} "
            "WHERE repositoryversion_id = %s",
            [version.pk],
        )
        low, high = cursor.fetchone()
    if low is None:
        return
    # The item side bounded by the version's own id range too: a merge join would otherwise walk
    # the item table from its first row to reach a version whose rows came later.
    where += " AND i.id BETWEEN %s AND %s"
    params += [low, high]
    limit = "" if item_filter.limit is None else f" LIMIT {int(item_filter.limit)}"
    offset = f" OFFSET {int(item_filter.offset)}"  # OFFSET (even 0) also keeps the planner from
    # estimating the concatenation's width as tiny and choosing to sort the whole list in memory.
    sql = (
        f"COPY (SELECT {_render_sql('s.h', 's.l', 's.t')} FROM ("
        f"SELECT i.json_head AS h, i.is_latest_version AS l, i.json_tail AS t "
        f"FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
        f"WHERE {where} ORDER BY m.{kind.member_column}{limit}{offset}) AS s) TO STDOUT (FORMAT binary)"
    )
    separator = b""
    with connection.cursor() as cursor:
        # The statement's cost estimate is large enough to start JIT compilation, which costs
        # seconds and gains nothing on a plain scan (SET LOCAL: for this transaction only).
        cursor.execute("SET LOCAL jit = off")
        for block, rows in copy_joined(cursor.cursor, sql, params, b",", COPY_BLOCK):
            yield separator + block
            separator = b","
            if on_batch is not None:
                on_batch(rows)


def stream_version(
    version: RepositoryVersion,
    item_filter: ItemFilter = EVERYTHING,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int | None = None,
    top: dict[str, Any] | None = None,
    bulk: bool = False,
) -> Iterator[bytes]:
    """The body of ``GET .../:version/?...``: the version's keys, then concepts, mappings, references.

    ``top`` replaces the version's own keys (the repository detail streams HEAD's items under the
    repository's representation). ``on_progress`` is called with the items written after every batch.
    ``bulk`` reads each list with one COPY (:func:`copy_item_chunks`): PostgreSQL only, and only
    when every row is rendered, which :func:`body_size` tells in the same snapshot.
    """
    head = dumps(top if top is not None else version_dict(version))
    yield head[:-1]
    done = 0

    def counted(count: int) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done)

    for kind, wanted in ((CONCEPTS, item_filter.include_concepts), (MAPPINGS, item_filter.include_mappings)):
        if not wanted:
            continue
        yield f',"{kind.key}":['.encode()
        if bulk:
            yield from copy_item_chunks(kind, version, item_filter, counted)
        else:
            yield from iter_item_chunks(kind, version, item_filter, batch_size, counted)
        yield b"]"
    if not version.repository.is_source:
        yield b',"references":' + dumps(version.references or [])
    yield b"}"


def body_size(version: RepositoryVersion, item_filter: ItemFilter = EVERYTHING) -> int | None:
    """The exact byte length of ``stream_version(version, item_filter)``, from stored renderings.

    One aggregate per list on PostgreSQL; None when it cannot be known without reading the items
    (SQLite, a limit or offset, or rows not rendered yet). Read it in the same snapshot as the
    stream: ``is_latest_version`` (true/false) is the one value whose length can change.
    """
    if connection.vendor != "postgresql" or item_filter.limit is not None or item_filter.offset:
        return None
    size = len(dumps(version_dict(version))) - 1 + 1  # the keys without "}", then the final "}"
    for kind, wanted in ((CONCEPTS, item_filter.include_concepts), (MAPPINGS, item_filter.include_mappings)):
        if not wanted:
            continue
        where, params = _where(kind, version.pk, item_filter)
        with connection.cursor() as cursor:
            # Index-only: the membership's unique index joined to the items' covering index.
            cursor.execute(
                "SELECT COUNT(*), COUNT(i.json_size), "
                "COALESCE(SUM(i.json_size + CASE WHEN i.is_latest_version THEN 4 ELSE 5 END), 0) "
                f"FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} WHERE {where}",
                params,
            )
            count, rendered, length = cursor.fetchone()
        if rendered != count:
            return None
        size += len(f',"{kind.key}":[]'.encode()) + int(length) + max(count - 1, 0)
    if not version.repository.is_source:
        size += len(b',"references":' + dumps(version.references or []))
    return size


def item_sql() -> str:
    """SQL for an item's JSON text from the row aliased ``i``: NULL when it is not rendered yet
    (then :func:`rendered_text` renders it)."""
    return _render_sql()


def rendered_text(kind: ItemKind, pk: int, text: str | None) -> bytes:
    """The bytes of one item read with :func:`item_sql`."""
    return _fill_unrendered(kind, [(pk, text)])[0][1].encode()


def member_bytes(kind: ItemKind, version_id: int, mnemonic: str) -> bytes | None:
    """Item ``mnemonic`` as the version holds it (its newest row there), in exactly the bytes it has
    inside the version; None when the version holds no such item. One query."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.id, {_render_sql()} FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
            "WHERE m.repositoryversion_id = %s AND i.mnemonic = %s ORDER BY i.id DESC LIMIT 1",
            [version_id, mnemonic],
        )
        rows = cursor.fetchall()
    return _fill_unrendered(kind, rows)[0][1].encode() if rows else None


def item_bytes(kind: ItemKind, pk: int) -> bytes:
    """One concept or mapping version, in exactly the bytes it has inside a version."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT i.id, {_render_sql()} FROM {kind.table} i WHERE i.id = %s", [pk])
        rows = cursor.fetchall()
    return _fill_unrendered(kind, rows)[0][1].encode()
