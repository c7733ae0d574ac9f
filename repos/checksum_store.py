"""Reading OCL checksums out of the database: a version's listing, its own checksums, the backfill.

Every item row carries its two checksums once ``render_parts`` has computed them, which an import
leaves by default to a job after it commits (``repos.checksum_jobs``); rows written before they
existed (migration 0008) get theirs from ``manage.py backfill_checksums``. Until then, anything
read here computes a missing pair from the row's rendering on the fly, so an answer is never
incomplete, only slower (:func:`pending` says how many are missing).

The listing (``GET .../:version/checksums/``) is what a mirror compares with its upstream: each
item's id, version id and checksums, streamed in keyset batches of the membership (a few short
index scans per batch, no item JSON read), so a 100,000-item version costs a fraction of a
second of server time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection

from repos.checksums import as_dict, combined, item_checksums
from repos.copy_out import copy_joined
from repos.models import RepositoryVersion
from repos.representation.body import COPY_BLOCK
from repos.representation.encoding import dumps
from repos.representation.items import CONCEPTS, MAPPINGS, ItemKind, item_sql, member_id_range, rendered_text
from repos.representation.rendering import update_rows

KINDS = (CONCEPTS, MAPPINGS)

# One row of a listing: (row id, item id, version id, standard, smart)
Row = tuple[int, str, str, str, str]


def _filled(kind: ItemKind, rows: list[tuple]) -> list[Row]:
    """Rows as read by :func:`iter_checksum_rows`' query, with a missing pair computed from the
    rendering the query brought along for exactly those rows."""
    out = []
    for pk, mnemonic, uuid, standard, smart, text in rows:
        if standard is None or smart is None:
            standard, smart = item_checksums(kind.key, rendered_text(kind, pk, text))
        out.append((pk, mnemonic, uuid, standard, smart))
    return out


def iter_checksum_rows(
    kind: ItemKind, version: RepositoryVersion, batch_size: int | None = None
) -> Iterator[list[Row]]:
    """Batches of every item of one list of ``version`` (retired ones too), by row id."""
    batch_size = batch_size or settings.EXPORT_BATCH_SIZE
    sql = (
        "SELECT i.id, i.mnemonic, i.uuid, i.checksum_standard, i.checksum_smart, "
        f"CASE WHEN i.checksum_standard IS NULL OR i.checksum_smart IS NULL THEN {item_sql()} END "
        f"FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
        # The same bound on both sides of the join, as representation.iter_rows explains.
        f"WHERE m.repositoryversion_id = %s AND m.{kind.member_column} > %s AND i.id > %s "
        f"ORDER BY m.{kind.member_column} LIMIT %s"
    )
    last_id = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [version.pk, last_id, last_id, batch_size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield _filled(kind, rows)
        if len(rows) < batch_size:
            return
        last_id = rows[-1][0]


def entry(row: Row) -> dict:
    """One item of the listing."""
    _pk, mnemonic, uuid, standard, smart = row
    return {"id": mnemonic, "version": uuid, "checksums": as_dict(standard, smart)}


def stream_listing(version: RepositoryVersion) -> Iterator[bytes]:
    """``{"concepts": [{"id", "version", "checksums"}...], "mappings": [...]}``, block by block."""
    separator = b"{"
    for kind in KINDS:
        yield separator + f'"{kind.key}":['.encode()
        if connection.vendor == "postgresql":
            yield from _copy_entries(kind, version)
        else:
            comma = b""
            for rows in iter_checksum_rows(kind, version):
                yield comma + dumps([entry(row) for row in rows])[1:-1]
                comma = b","
        yield b"]"
        separator = b","
    yield b"}"


# The entry as PostgreSQL writes it: one JSON text per row (to_json escapes as JSON requires).
_ENTRY_SQL = (
    """'{"id":' || to_json(i.mnemonic)::text || ',"version":' || to_json(i.uuid)::text """
    """|| ',"checksums":{"standard":"' || i.checksum_standard || '","smart":"' || i.checksum_smart || '"}}'"""
)


def _copy_entries(kind: ItemKind, version: RepositoryVersion) -> Iterator[bytes]:
    """The entries of one list from one ``COPY ... TO STDOUT``: one statement, one merge join of
    the membership with the items (as the export reads them), about 1 MiB a block. A list with
    rows whose checksums are missing (found through the partial index that holds only those)
    takes the batched road, which computes them: nothing can be asked mid-COPY."""
    with connection.cursor() as cursor:
        low, high = member_id_range(cursor, kind, version.pk)
        if low is None:
            return
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {kind.table} i JOIN {kind.membership} m ON m.{kind.member_column} = i.id "
            "WHERE i.checksum_standard IS NULL AND i.id BETWEEN %s AND %s AND m.repositoryversion_id = %s)",
            [low, high, version.pk],
        )
        missing = cursor.fetchone()[0]
    if missing:
        comma = b""
        for rows in iter_checksum_rows(kind, version):
            yield comma + dumps([entry(row) for row in rows])[1:-1]
            comma = b","
        return
    sql = (
        f"COPY (SELECT {_ENTRY_SQL} FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
        # the item side bounded by the version's own id range, as copy_item_chunks explains
        "WHERE m.repositoryversion_id = %s AND i.id BETWEEN %s AND %s "
        f"ORDER BY m.{kind.member_column}) TO STDOUT (FORMAT binary)"
    )
    comma = b""
    with connection.cursor() as cursor:
        for block, _rows in copy_joined(cursor.cursor, sql, [version.pk, low, high], b",", COPY_BLOCK):
            yield comma + block
            comma = b","


def version_checksums(version: RepositoryVersion, recompute: bool = False) -> dict[str, str | None]:
    """The version's checksums: its items' combined (:func:`repos.checksums.combined`), concepts
    and mappings together; None for an empty version. Stored on a named version the first time
    (its items never change); HEAD's are computed on every call, and so are any version's with
    ``recompute`` (what ``manage.py verify`` asks: the rows as they are now, not a stored figure)."""
    if not recompute and not version.is_head and version.checksum_standard is not None:
        return as_dict(version.checksum_standard, version.checksum_smart)
    standards: list[str] = []
    smarts: list[str] = []
    for kind in KINDS:
        for rows in iter_checksum_rows(kind, version):
            standards += [row[3] for row in rows]
            smarts += [row[4] for row in rows]
    standard, smart = combined(standards), combined(smarts)
    if not recompute and not version.is_head and standard is not None:
        RepositoryVersion.objects.filter(pk=version.pk).update(checksum_standard=standard, checksum_smart=smart)
        version.checksum_standard, version.checksum_smart = standard, smart
    return as_dict(standard, smart)


def with_checksums(kind: ItemKind, rows: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Item texts ``(row id, JSON)`` with a ``checksums`` key added at their end (stored values;
    a missing pair is computed from the text itself). One query per call."""
    if not rows:
        return rows
    pks = [pk for pk, _text in rows]
    placeholders = ", ".join(["%s"] * len(pks))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, checksum_standard, checksum_smart FROM {kind.table} WHERE id IN ({placeholders})", pks
        )
        stored = {pk: (standard, smart) for pk, standard, smart in cursor.fetchall()}
    out = []
    for pk, text in rows:
        standard, smart = stored.get(pk, (None, None))
        if standard is None or smart is None:
            standard, smart = item_checksums(kind.key, text)
        out.append((pk, splice(text, standard, smart)))
    return out


def splice(text: str, standard: str, smart: str) -> str:
    """An item's JSON text (an object) with ``"checksums"`` as its last key."""
    return text[:-1] + ',"checksums":' + dumps(as_dict(standard, smart)).decode() + "}"


def backfill(
    batch_size: int = 5000, on_batch: Callable[[str, int], None] | None = None, repository_id: int | None = None
) -> int:
    """Compute and store the checksums of every rendered row that has none; returns how many.
    With ``repository_id``, only the rows some version of that repository holds (HEAD included):
    what an import of it left to ``repos.checksum_jobs``.

    In keyset batches, each its own transaction, so it can run beside the service and be stopped
    and started again (a run that dies leaves whole batches stored, and the next one starts with
    the rows still without); memory stays one batch. Rows not rendered yet get both with their
    rendering (``render_pending``), not here."""
    done = 0
    for kind in KINDS:
        last_id = 0
        held = "" if repository_id is None else _HELD_BY_REPOSITORY.format(kind=kind)
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT i.id, {item_sql()} FROM {kind.table} i WHERE i.id > %s AND i.json_head IS NOT NULL "
                    # checksum_standard IS NULL: the partial index of the rows without checksums
                    f"AND i.checksum_standard IS NULL {held}ORDER BY i.id LIMIT %s",
                    [last_id, *([] if repository_id is None else [repository_id]), batch_size],
                )
                rows = cursor.fetchall()
            if not rows:
                break
            updates = [(*item_checksums(kind.key, text), pk) for pk, text in rows]
            _store(kind, updates)
            done += len(updates)
            last_id = rows[-1][0]
            if on_batch is not None:
                on_batch(kind.key, len(updates))
    return done


# A row some version of the repository holds: one probe of the membership's item-side index per row.
_HELD_BY_REPOSITORY = (
    "AND EXISTS (SELECT 1 FROM {kind.membership} m JOIN repos_repositoryversion v ON v.id = m.repositoryversion_id "
    "WHERE m.{kind.member_column} = i.id AND v.repository_id = %s) "
)


def pending(version: RepositoryVersion) -> int:
    """How many of the version's items have no stored checksums yet (their answers compute them
    on the fly meanwhile): zero once the import's job (``repos.checksum_jobs``) has run. Read
    through the partial index that holds only such rows, so it costs next to nothing at zero."""
    count = 0
    with connection.cursor() as cursor:
        for kind in KINDS:
            cursor.execute(
                f"SELECT count(*) FROM {kind.table} i JOIN {kind.membership} m ON m.{kind.member_column} = i.id "
                "WHERE i.checksum_standard IS NULL AND m.repositoryversion_id = %s",
                [version.pk],
            )
            count += cursor.fetchone()[0]
    return count


def _store(kind: ItemKind, updates: list[tuple[str, str, int]]) -> None:
    """``(standard, smart, id)`` rows onto their items."""
    update_rows(kind, "item_checksums", ("checksum_standard", "checksum_smart"), updates)
