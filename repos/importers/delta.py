"""Applying a version delta (``repos.deltas``): version A here plus the delta gives version B.

It is an import like any other, so the importer stays the only writer: the delta's items are
staged, matched and merged into the item tables and into HEAD exactly as a whole import of B
would merge them. Only the new version's membership differs: instead of "the file's rows" it is
A's rows, less those of the items the delta changes or removes, plus the delta's rows, in one
``INSERT ... SELECT`` per kind. Before the transaction commits, B must hold as many concepts and
mappings as the delta says B has; anything else (a delta made from another A, a damaged file)
rolls back with nothing written. Whether the result has B's sha256 its export tells; the
subscriber checks that against the delta's ``to.export.sha256``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from repos.deltas import count_held
from repos.importers import loader, merge
from repos.importers.errors import ImportFileError
from repos.importers.normalize import REPO_URL, plan_from_metadata
from repos.importers.reader import DAMAGED, describe, open_export, read_file_metadata
from repos.importers.removals import remove_from_head
from repos.importers.scanner import iter_items
from repos.importers.versions import VersionError, find_repository
from repos.models import Repository, RepositoryVersion
from repos.representation.items import CONCEPTS, KINDS, MAPPINGS, ItemKind

REMOVED = "import_removed_items"


def read_delta_metadata(path: Path) -> dict[str, Any]:
    metadata = read_file_metadata(path, "damaged or truncated delta, in its header")
    header = metadata.get("delta")
    if not isinstance(header, dict) or not all(isinstance(header.get(end), dict) for end in ("from", "to")):
        raise ImportFileError(f'{path}: not a version delta (no "delta" object with "from" and "to")')
    return metadata


def apply_delta(path: str | Path, *, quiet: bool = True, batch_size: int | None = None) -> loader.ImportSummary:
    """Create version B of the delta at ``path`` from its version A, which must be here.

    B already here answers "unchanged" when it holds the counts the delta names (a delta applied
    twice), else raises. Raises :class:`ImportFileError` with nothing written for anything it
    cannot apply.
    """
    path = Path(path)
    metadata = read_delta_metadata(path)
    header = metadata["delta"]
    try:
        plan = plan_from_metadata(metadata)
    except (ImportFileError, ValueError) as exc:
        raise ImportFileError(f"{path}: {exc}") from exc
    try:
        repository = find_repository(plan.url)
    except VersionError as exc:
        raise ImportFileError(f"{path}: the delta's repository is not here ({exc})") from exc
    base = repository.versions.filter(version=str(header["from"].get("id"))).first()
    if base is None:
        raise ImportFileError(f"{path}: the delta starts from version {header['from'].get('id')!r}, not here")
    target = str(header["to"].get("id"))
    if plan.version_id != target:
        raise ImportFileError(f'{path}: the delta\'s header names {plan.version_id!r}, its "to" {target!r}')
    existing = repository.versions.filter(version=target).first()
    if existing is not None:
        if _held(existing) != _expected(path, header):
            raise ImportFileError(f"{path}: version {target!r} of {repository.url} exists with other content")
        return loader.ImportSummary(str(path), repository.url, target, loader.UNCHANGED)

    def fill(created: RepositoryVersion) -> datetime | None:
        _stage_removed(path, repository)
        for kind in KINDS.values():
            carry_over(kind, base.pk, created.pk)
        # PostgreSQL takes a version it has not seen for one row: the statements that read B next
        # (HEAD's removals, the proof's sizes) then looped over all of it once per row, minutes
        # on a mirror holding few versions. Its statistics learn B's rows (this transaction's).
        loader.analyze(kind.membership for kind in KINDS.values())
        held = _held(created)
        if loader._is_newest(created):
            # As a whole import of the newest version does: HEAD keeps no item B does not hold.
            now = timezone.now()
            for kind in KINDS.values():
                remove_from_head(
                    kind,
                    created.repository.head().pk,
                    _not_held_by_key(kind),
                    [created.pk],
                    now,
                    spared=(_held_by_item(kind), [created.pk]),
                )
        if held != _expected(path, header):
            raise ImportFileError(
                f"{path}: applied to {base.version!r} here, the delta gives {held} where "
                f"{target!r} holds {_expected(path, header)} (concepts, mappings): not a delta from this version"
            )
        return newest_held(base, created)

    with transaction.atomic():
        summary = loader._load(path, plan, None, quiet, batch_size or settings.IMPORT_BATCH_SIZE, fill=fill)
    return summary


def _not_held_by_key(kind: ItemKind) -> str:
    """The condition on HEAD's membership row ``m``: version ``%s`` has no such row. Most of
    HEAD's rows are B's own; this finds the others by the membership key alone."""
    member = kind.member_column
    return (
        f"NOT EXISTS (SELECT 1 FROM {kind.membership} AS own "
        f"WHERE own.repositoryversion_id = %s AND own.{member} = m.{member})"
    )


def _held_by_item(kind: ItemKind) -> str:
    """The condition on an item ``i`` picked by :func:`_not_held_by_key`: version ``%s`` holds
    another version of it (so the item has not left)."""
    return (
        f"EXISTS (SELECT 1 FROM {kind.table} j JOIN {kind.membership} b ON b.{kind.member_column} = j.id "
        "WHERE j.source_id = i.source_id AND j.mnemonic = i.mnemonic AND b.repositoryversion_id = %s)"
    )


def newest_held(base: RepositoryVersion, created: RepositoryVersion) -> datetime | None:
    """B's newest item's ``updated_on`` without reading all of B (two MAX joins over 100,000
    rows took 0.2-0.4 s of a delta's second): A's newest instant, when an item of B still has it
    (looked up by the ``updated_on`` index), or a newer one the delta brought. None when A's newest
    items all left, or A's instant is not an item's: then it is computed the long way."""
    held_before = base.get_last_updated()
    still_held = any(
        merge.scalar(
            f"SELECT 1 FROM {kind.table} i JOIN {kind.membership} b ON b.{kind.member_column} = i.id "
            "WHERE i.updated_on = %s AND b.repositoryversion_id = %s LIMIT 1",
            [held_before, created.pk],
        )
        for kind in KINDS.values()
    )
    if not still_held:
        return None
    brought = merge.newest_updated_on(tuple(KINDS.values()))
    return max(held_before, brought) if brought is not None else held_before


def _expected(path: Path, header: dict[str, Any]) -> tuple[int, int]:
    try:
        return int(header["to"]["concepts"]), int(header["to"]["mappings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ImportFileError(f"{path}: the delta does not say how many items its version holds") from exc


def _held(version: RepositoryVersion) -> tuple[int, int]:
    return count_held(CONCEPTS, version), count_held(MAPPINGS, version)


def _stage_removed(path: Path, repository: Repository) -> None:
    """The delta's ``removed`` entries into a temporary table of (kind, source id, item id)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REMOVED}")
        suffix = " ON COMMIT DROP" if connection.vendor == "postgresql" else ""
        cursor.execute(f"CREATE TEMPORARY TABLE {REMOVED} (kind text, source_id bigint, mnemonic text){suffix}")
    sources: dict[str, int | None] = {repository.url: repository.pk}
    keys = {"Concept": "concepts", "Mapping": "mappings"}
    batch: list[tuple[str, int, str]] = []
    with open_export(path) as stream:
        try:
            for _key, index, entry in iter_items(stream, ("removed",)):
                if not isinstance(entry, dict) or entry.get("type") not in keys or not entry.get("url"):
                    raise ImportFileError(f"{path}: removed item #{index} is not a {{type, id, url}} object")
                kind = keys[entry["type"]]
                url = str(entry["url"])
                marker = url.rfind(f"/{kind}/")
                source_url = url[: marker + 1]
                if source_url not in sources:
                    sources[source_url] = _source_id(source_url)
                source_id = sources[source_url]
                if source_id is not None:  # a source not here holds nothing to remove
                    batch.append((kind, source_id, str(entry.get("id") or url[marker + len(kind) + 2 :].strip("/"))))
        except DAMAGED as exc:
            if isinstance(exc, ImportFileError):
                raise
            raise ImportFileError(
                f"{path}: damaged or truncated delta, in its removed items ({describe(exc)})"
            ) from exc
    if batch:
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {REMOVED} (kind, source_id, mnemonic) VALUES (%s, %s, %s)", batch)


def _source_id(url: str) -> int | None:
    if REPO_URL.match(url) is None:
        return None
    try:
        return find_repository(url).pk
    except VersionError:
        return None


def carry_over(kind: ItemKind, base_id: int, version_id: int) -> None:
    """The new version's membership: the base's rows of items the delta neither changes nor
    removes, and the delta's own rows (their ids are in the staging table after the merge).

    The rows to leave out are found from the delta's side (a few index lookups per item), so
    the base's rows are copied by their membership key alone, never read from the item table."""
    member = kind.member_column
    same_item = "t.source_id = {0}.source_id AND t.mnemonic = {0}.mnemonic"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {kind.membership} (repositoryversion_id, {member}) "
            f"SELECT %s, m.{member} FROM {kind.membership} m WHERE m.repositoryversion_id = %s "
            f"AND m.{member} NOT IN ("
            f"SELECT t.id FROM {kind.table} t JOIN {kind.staging} st ON {same_item.format('st')} "
            f"UNION ALL SELECT t.id FROM {kind.table} t JOIN {REMOVED} r ON r.kind = %s AND {same_item.format('r')}) "
            f"UNION SELECT %s, row_id FROM {kind.staging} ORDER BY 2",
            [version_id, base_id, kind.key, version_id],
        )
