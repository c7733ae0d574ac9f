"""The write path: each item's JSON rendered once and stored with its row.

Items are immutable but for ``is_latest_version``, so the rendering is stored in two halves
around that value (``json_head``, ``json_tail``) and its byte size; exports and reads then send
stored text instead of building each item again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson
from django.db import connection, transaction

from repos.checksums import item_checksums
from repos.representation.encoding import DUMPS_OPTIONS
from repos.representation.items import CONCEPTS, MAPPINGS, ItemKind, full_rows
from repos.representation.shapes import SourceInfo, SourceInfoCache

# A byte that orjson never writes inside JSON text (it escapes control characters), used to
# split an item's rendering around its one mutable value.
_LATEST_MARK = orjson.Fragment(b"\x00")


def render_parts(
    kind: ItemKind, row: tuple, sources: Mapping[int, SourceInfo], checksums: bool = True
) -> tuple[str, str, int, str | None, str | None]:
    """An item's stored rendering: its JSON text before and after the value of is_latest_version,
    their length in bytes, and OCL's standard and smart checksums of that JSON (which do not read
    is_latest_version), or None and None with ``checksums=False`` (the importer's deferred road:
    ``repos.checksum_jobs`` fills them in). ``row`` is in ``kind.columns`` order (the importer
    passes rows it is about to write)."""
    item = kind.build(row, sources)
    item["is_latest_version"] = _LATEST_MARK
    rendered = orjson.dumps(item, option=DUMPS_OPTIONS)
    head, tail = rendered.split(b"\x00")
    sums = item_checksums(kind.key, head + b"true" + tail) if checksums else (None, None)
    return head.decode(), tail.decode(), len(rendered) - 1, *sums


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
        updates = [(*render_parts(kind, row, sources), row[0]) for row in full_rows(kind, pks)]
        _store_renderings(kind, updates)
        done += len(updates)
        last_id = pks[-1]
        if on_batch is not None:
            on_batch(len(updates))  # a sign of life for whoever waits (an export's heartbeat)


RENDERING = ("json_head", "json_tail", "json_size", "checksum_standard", "checksum_smart")


def _store_renderings(kind: ItemKind, updates: list[tuple[str, str, int, str, str, int]]) -> None:
    """Write ``(head, tail, size, standard, smart, id)`` rows."""
    update_rows(kind, "rendered_items", RENDERING, updates)


def update_rows(kind: ItemKind, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Rows of ``(*columns, id)`` values onto their items: COPY into the temporary ``table``
    (typed as the item table's columns; one name per set of columns) and one UPDATE on
    PostgreSQL, a batch of thousands in one statement; row by row elsewhere."""
    # atomic: the temporary table lives until the end of this transaction, even in autocommit
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            assignments = ", ".join(f"{column} = %s" for column in columns)
            cursor.executemany(f"UPDATE {kind.table} SET {assignments} WHERE id = %s", rows)
            return
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ON COMMIT DROP AS "
            f"SELECT {', '.join(columns)}, id FROM {kind.table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        assignments = ", ".join(f"{column} = u.{column}" for column in columns)
        cursor.execute(f"UPDATE {kind.table} AS i SET {assignments} FROM {table} AS u WHERE i.id = u.id")
        cursor.execute(f"TRUNCATE {table}")


def render_all_pending(on_batch: Callable[[int], None] | None = None) -> int:
    return render_pending(CONCEPTS, on_batch=on_batch) + render_pending(MAPPINGS, on_batch=on_batch)
