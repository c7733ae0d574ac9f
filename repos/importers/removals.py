"""Taking items out of a HEAD, leaving a tombstone for each (``repos.models.HeadRemoval``).

Three imports remove items, each inside the import's transaction:

- a version newer than every version the repository holds (a source or a collection) makes HEAD
  hold exactly the version's items: OCL's versions are snapshots of HEAD, so an item missing from
  the newest one has left HEAD (a collection reference removed, a concept hard-deleted);
- a diff (a partial import) that lists ``removed`` items, as ``?includeRemoved=true`` writes
  them: each named item leaves HEAD unless the same diff delivers it again;
- a diff that lists HEAD's ``members`` (every item the upstream's HEAD holds, by URL: what a
  mirror of an OCL v2 server, which keeps no removals, reads from its cheap listings): every
  item of HEAD it does not list leaves HEAD.

The entries stream into a temporary table like the items do, so a list of a million holds one
batch in memory. Everything is a few set-based statements.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db import connection

from repos.importers.errors import ImportFileError
from repos.importers.merge import execute, not_staged, scalar
from repos.models import Repository
from repos.representation.items import ItemKind

REMOVED = "removed"  # the array of a diff that lists what left HEAD
MEMBERS = "members"  # the array of a diff that lists everything HEAD holds
BATCH = 5000
TYPES = {"Concept": "concepts", "Mapping": "mappings"}
LABELS = {kind: label for label, kind in TYPES.items()}
# An item's URL, or one of its versions' (OCL v2 lists a collection's pinned items so).
ITEM_URL = re.compile(r"^/(orgs|users)/([^/]+)/sources/([^/]+)/(concepts|mappings)/([^/]+)/(?:[^/]+/)?$")

# A HEAD membership row, its item (``i``) and that item's source URL, as the representation writes it.
_SOURCE_URL = (
    "'/' || CASE WHEN r.owner_org_id IS NOT NULL THEN 'orgs/' || o.mnemonic ELSE 'users/' || u.username END "
    "|| '/' || r.repo_type || '/' || r.mnemonic || '/'"
)


LEAVING = "head_leaving"  # the rows one removal takes out of HEAD: (membership row, its item)


def remove_from_head(
    kind: ItemKind,
    head_id: int,
    condition: str,
    params: list,
    now: datetime,
    spared: tuple[str, list] | None = None,
) -> int:
    """Take HEAD's rows of ``kind`` whose item ``i`` meets ``condition`` out of HEAD; how many.

    Each removed item gets a tombstone stamped ``now`` (an earlier one of the same item goes).
    ``condition`` is evaluated once, into a temporary table the three writes read: it is the
    costly part (an anti-join over HEAD), and usually picks nothing, which ends it there.
    ``spared`` (a condition on the picked item ``i`` and its parameters) then takes rows back
    out of that table: a second test that only the few picked rows pay, planned on the table's
    true size (it is analyzed first) rather than on a guess about rows written in this
    transaction (a version's new membership, which PostgreSQL's statistics put at one row: a
    nested loop over it once took minutes)."""
    member = kind.member_column
    execute(f"DROP TABLE IF EXISTS {LEAVING}")
    execute(
        f"CREATE TEMPORARY TABLE {LEAVING} AS SELECT i.id, i.source_id, i.mnemonic, i.uuid "
        f"FROM {kind.membership} AS m JOIN {kind.table} AS i ON i.id = m.{member} "
        f"WHERE m.repositoryversion_id = %s AND ({condition})",
        [head_id, *params],
    )
    if spared is not None and scalar(f"SELECT EXISTS (SELECT 1 FROM {LEAVING})"):
        execute(f"ANALYZE {LEAVING}")
        execute(f"DELETE FROM {LEAVING} AS i WHERE {spared[0]}", spared[1])
    if not scalar(f"SELECT EXISTS (SELECT 1 FROM {LEAVING})"):
        return 0
    execute(
        f"DELETE FROM repos_headremoval WHERE head_id = %s AND kind = %s AND EXISTS (SELECT 1 FROM {LEAVING} AS i "
        "WHERE i.source_id = repos_headremoval.source_id AND i.mnemonic = repos_headremoval.mnemonic)",
        [head_id, kind.key],
    )
    execute(
        "INSERT INTO repos_headremoval (head_id, kind, source_id, mnemonic, url, version_url, removed_on) "
        f"SELECT %s, %s, i.source_id, i.mnemonic, {_SOURCE_URL} || %s || i.mnemonic || '/', "
        f"{_SOURCE_URL} || %s || i.mnemonic || '/' || i.uuid || '/', %s "
        f"FROM {LEAVING} AS i JOIN repos_repository AS r ON r.id = i.source_id "
        "LEFT JOIN repos_organization AS o ON o.id = r.owner_org_id LEFT JOIN auth_user AS u ON u.id = r.owner_user_id",
        [head_id, kind.key, f"{kind.key}/", f"{kind.key}/", now],
    )
    return execute(
        f"DELETE FROM {kind.membership} WHERE repositoryversion_id = %s AND {member} IN (SELECT id FROM {LEAVING})",
        [head_id],
    )


def keep_only_staged(kind: ItemKind, head_id: int, now: datetime) -> int:
    """HEAD holds the staged rows of ``kind`` and nothing else (a newest version's import)."""
    # The merge has put every staged row into HEAD: when it holds as many rows, it holds nothing
    # else. Two counts (an index-only scan) skip the anti-joins, 0.7 s of an 11 s re-import of
    # 100,000 items, when a version removes nothing, as most do.
    held = scalar(f"SELECT COUNT(*) FROM {kind.membership} WHERE repositoryversion_id = %s", [head_id])
    if held == scalar(f"SELECT COUNT(DISTINCT row_id) FROM {kind.staging}"):
        return 0
    return remove_from_head(kind, head_id, not_staged(kind, "i.id"), [], now)


def remove_listed(kind: ItemKind, head_id: int, now: datetime) -> int:
    """A diff's removed items of ``kind`` leave HEAD, unless the diff also delivers them."""
    return remove_from_head(kind, head_id, f"{_listed(REMOVED)} AND {not_staged(kind, 'i.id')}", [kind.key], now)


def remove_unlisted(kind: ItemKind, head_id: int, now: datetime) -> int:
    """HEAD's items of ``kind`` that a diff's members list does not name (nor the diff deliver) leave it."""
    return remove_from_head(kind, head_id, f"NOT {_listed(MEMBERS)} AND {not_staged(kind, 'i.id')}", [kind.key], now)


def _listed(array: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM import_{array} AS listed WHERE listed.kind = %s "
        "AND listed.source_id = i.source_id AND listed.mnemonic = i.mnemonic)"
    )


class ListWriter:
    """The entries of a diff's ``removed`` (or ``members``) array into a temporary table, a batch
    at a time; ``seen`` once the file has the array, even empty.

    An entry names its item by ``url`` (``/orgs/X/sources/Y/concepts/ID/``), with a ``type``
    (Concept or Mapping) that agrees when it has one; one whose source is not here names nothing
    HEAD could hold, and is skipped. A malformed entry refuses the file."""

    def __init__(self, array: str) -> None:
        self.array = array
        self.table = f"import_{array}"
        execute(f"DROP TABLE IF EXISTS {self.table}")
        execute(f"CREATE TEMPORARY TABLE {self.table} (kind varchar(16), source_id bigint, mnemonic varchar(255))")
        self.sources: dict[tuple[str, str, str], int | None] = {}
        self.batch: list[tuple[str, int, str]] = []
        self.count = 0
        self.seen = False

    def add(self, index: int, entry: Any) -> None:
        url = entry.get("url") if isinstance(entry, dict) else None
        parsed = ITEM_URL.match(url) if isinstance(url, str) else None
        # no type: the URL's
        named = (
            entry.get("type", LABELS.get(parsed.group(4))) if parsed is not None and isinstance(entry, dict) else None
        )
        if parsed is None or TYPES.get(named) != parsed.group(4):
            raise ImportFileError(
                f"{self.array} entry #{index} is not an object with its item's url (and a type, Concept or Mapping)"
            )
        segment, owner, source, kind, mnemonic = parsed.groups()
        source_id = self._source(segment, owner, source)
        self.count += 1
        if source_id is not None:
            self.batch.append((kind, source_id, mnemonic))
            if len(self.batch) >= BATCH:
                self.flush()

    def _source(self, segment: str, owner: str, mnemonic: str) -> int | None:
        key = (segment, owner, mnemonic)
        if key not in self.sources:
            owner_filter = {"owner_org__mnemonic": owner} if segment == "orgs" else {"owner_user__username": owner}
            found = Repository.objects.filter(repo_type=Repository.SOURCES, mnemonic=mnemonic, **owner_filter)
            self.sources[key] = found.values_list("pk", flat=True).first()
        return self.sources[key]

    def flush(self) -> None:
        if self.batch:
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self.table} (kind, source_id, mnemonic) VALUES (%s, %s, %s)", self.batch
                )
            self.batch.clear()
