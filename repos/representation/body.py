"""A version's body, streamed: ``GET .../:version/?...`` and the export's ``export.json``.

Both the read API and the export job call :func:`stream_version`, so the archive's
``export.json`` equals the REST body by construction. It yields bytes batch by batch (keyset
batches, or one COPY when every row is rendered): memory stays flat whatever the version's
size. :func:`body_size` gives the exact length from stored sizes, without reading the items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection

from repos.copy_out import copy_joined
from repos.models import RepositoryVersion
from repos.representation.encoding import dumps
from repos.representation.items import (
    CONCEPTS,
    EVERYTHING,
    MAPPINGS,
    ItemFilter,
    ItemKind,
    iter_rows,
    member_id_range,
    stored_json_sql,
    where_clause,
)
from repos.representation.shapes import version_dict


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
    where, params = where_clause(kind, version.pk, item_filter)
    with connection.cursor() as cursor:
        low, high = member_id_range(cursor, kind, version.pk)
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
        f"COPY (SELECT {stored_json_sql('s.h', 's.l', 's.t')} FROM ("
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
        where, params = where_clause(kind, version.pk, item_filter)
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
