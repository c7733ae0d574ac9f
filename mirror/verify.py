"""Is a mirror equal to its upstream? Compared by OCL checksums, no item downloaded.

First, for each version the mirror holds of the subscription's repository (and HEAD, when it
follows HEAD), its checksums, computed afresh from its items' rows (never a stored figure), are
compared with the ones the upstream states for the same version (``versions/?checksums=true``,
one request for all): this service combines every item's checksums into its version's, so equal
version checksums mean the same items with the same content, at the cost of reading 100,000 rows'
checksums (a fraction of a second) instead of listing and joining them. ``--items`` skips this.

A version whose checksums differ, or whose upstream states none comparable (OCL v2's version
checksums digest the version's metadata only), is compared item by item: the upstream's
checksum listing (this service's ``.../:version/checksums/``; OCL v2's brief item pages with
``checksums=true``) is streamed into a temporary table, and one SQL join with the mirror's own
memberships and stored checksums (computed from the stored rendering for rows whose checksums
the import's deferred job has not stored yet) says what differs: an item the upstream holds and
the mirror does not (missing here), the other way round (missing there), or the same item with
another version id or other checksums (changed). Nothing of a version is held in memory but the
differences (and a batch of renderings whose checksums are not stored yet), and the work is a
COPY and a join: about 2 s a 100,000-item version.

Items are matched by list, id and version id; an item found on both sides under two version ids
is one change, not two. Both checksums are compared with this service's upstream; with OCL v2
only the smart one, because oclapi2 computes the standard one after rewriting null name and
description types, which this service serves as given (README, "OCL checksums").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper

from repos.checksum_store import version_checksums
from repos.checksums import STANDARD, item_checksums
from repos.deltas import count_held
from repos.models import HEAD, RepositoryVersion
from repos.representation.items import CONCEPTS, MAPPINGS, item_sql, rendered_text

from .client import ChecksumEntry, Upstream
from .models import Subscription, SubscriptionError
from .sync import held_versions, local_versions

THERE = "verify_upstream_items"
HERE = "verify_mirror_items"
LISTING = "verify_upstream_listing"
LINE_BREAKS_TO_SPACES = bytes.maketrans(b"\r\n", b"  ")
LABELS = {CONCEPTS.key: "concept", MAPPINGS.key: "mapping"}
MISSING_HERE = "missing here"
MISSING_THERE = "missing there"
CHANGED = "changed"
BY_VERSION = "version checksums"  # how a version found equal as a whole was compared

# (version id, standard, smart) of an item on one side
Side = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class Difference:
    kind: str  # "concept" or "mapping"
    id: str
    what: str  # MISSING_HERE, MISSING_THERE or CHANGED
    here: Side | None
    there: Side | None

    def __str__(self) -> str:
        def side(value: Side | None) -> str:
            if value is None:
                return "-"
            version, standard, smart = value
            return f"version {version} standard {standard or '-'} smart {smart or '-'}"

        return f"{self.what:13} {self.kind:7} {self.id}: here {side(self.here)}; there {side(self.there)}"


@dataclass
class Comparison:
    version: str
    source: str  # how it was compared: BY_VERSION, or the upstream's item "listing" or "pages"
    here: int = 0  # items the mirror's version holds
    there: int = 0  # items the upstream's holds
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def equal(self) -> bool:
        return not self.differences


def versions_to_verify(subscription: Subscription) -> list[str]:
    """The mirrored versions, oldest id first, then HEAD when the subscription follows it."""
    versions = sorted(local_versions(subscription))
    return [*versions, HEAD] if subscription.follow_head else versions


def verify(
    subscription: Subscription, upstream: Upstream, versions: Iterable[str] | None = None, items: bool = False
) -> list[Comparison]:
    """Compare each of ``versions`` (default: :func:`versions_to_verify`) with the upstream's;
    ``items``: item by item even where the versions' checksums agree."""
    wanted = list(versions) if versions is not None else versions_to_verify(subscription)
    stated = {} if items else upstream.version_checksums()
    return [compare_version(subscription, upstream, version, stated.get(version)) for version in wanted]


def local_version(subscription: Subscription, version: str) -> RepositoryVersion:
    found = held_versions(subscription).filter(version=version).first()
    if found is None:
        raise SubscriptionError(f"the mirror holds no version {version!r} of {subscription.url}")
    return found


def compare_version(
    subscription: Subscription, upstream: Upstream, version: str, stated: dict | None = None
) -> Comparison:
    """One version; ``stated``: the upstream's checksums of it, when known (see the module)."""
    started = time.monotonic()
    here = local_version(subscription, version)
    if stated and stated.get(STANDARD) and version_checksums(here, recompute=True) == stated:
        held = sum(count_held(kind, here) for kind in (CONCEPTS, MAPPINGS))
        return Comparison(version, BY_VERSION, held, held, seconds=time.monotonic() - started)
    listing = upstream.checksum_listing(version)
    comparison = Comparison(version, "listing" if listing is not None else "pages")
    with transaction.atomic():  # the temporary tables live as long as this transaction
        _create_there()
        if listing is not None:
            comparison.there = _load_listing(listing)
        else:
            comparison.there = _load_entries(upstream.checksum_pages(version))
        comparison.here, rows = _join(here, both_checksums=listing is not None)
    comparison.differences = pair_up(rows)
    comparison.seconds = time.monotonic() - started
    return comparison


def _create_there() -> None:
    with connection.cursor() as cursor:
        for table in (THERE, LISTING):  # (dropped first inside a longer transaction: a test's)
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {THERE} (kind text, id text, version text, standard text, smart text) ON COMMIT DROP"
        )


def _load_entries(entries: Iterable[ChecksumEntry]) -> int:
    count = 0
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {THERE} (kind, id, version, standard, smart) FROM STDIN") as copy:
            for entry in entries:
                copy.write_row(entry)
                count += 1
    return count


def _load_listing(chunks: Iterable[bytes]) -> int:
    """The listing's bytes, as they arrive, into one text value that PostgreSQL parses as JSON.

    COPY's CSV mode with a delimiter and a quote that valid JSON cannot hold raw (control
    characters) takes the text verbatim, backslashes included; a raw line break can only be
    whitespace between JSON tokens, so it is made a space. Parsing 100,000 entries this way is a
    fraction of a second of C, where reading them in Python took seconds."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {LISTING} (doc text) ON COMMIT DROP")
        with cursor.copy(
            f"COPY {LISTING} (doc) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
        ) as copy:
            for chunk in chunks:
                copy.write(chunk.translate(LINE_BREAKS_TO_SPACES))
        try:
            with transaction.atomic():
                cursor.execute(
                    f"INSERT INTO {THERE} (kind, id, version, standard, smart) "
                    "SELECT kind, e->>'id', e->>'version', e->'checksums'->>'standard', e->'checksums'->>'smart' "
                    f"FROM (SELECT doc::jsonb AS doc FROM {LISTING}) l, "
                    "LATERAL (VALUES ('concepts'), ('mappings')) AS k(kind), "
                    "LATERAL jsonb_array_elements(l.doc->k.kind) e"
                )
        except DatabaseError as exc:
            raise SubscriptionError(f"the upstream's checksum listing is not one ({exc})".strip()) from exc
        return cursor.rowcount


def _join(version: RepositoryVersion, both_checksums: bool) -> tuple[int, list[tuple]]:
    """(items here, the rows that differ: kind, id, here's version/standard/smart, there's)."""
    here = " UNION ALL ".join(
        f"SELECT '{kind.key}' AS kind, i.id AS pk, i.mnemonic AS id, i.uuid AS version, i.checksum_standard AS standard, "
        f"i.checksum_smart AS smart FROM {kind.membership} m JOIN {kind.table} i ON i.id = m.{kind.member_column} "
        "WHERE m.repositoryversion_id = %s"
        for kind in (CONCEPTS, MAPPINGS)
    )
    differs = "h.smart IS DISTINCT FROM t.smart" + (
        " OR h.standard IS DISTINCT FROM t.standard" if both_checksums else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {HERE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {HERE} ON COMMIT DROP AS {here}", [version.pk, version.pk])
        cursor.execute(f"SELECT COUNT(*) FROM {HERE}")
        count = cursor.fetchone()[0]
        _fill_missing(cursor)
        cursor.execute(
            "SELECT COALESCE(h.kind, t.kind), COALESCE(h.id, t.id), h.version, h.standard, h.smart, "
            "t.version, t.standard, t.smart "
            f"FROM {HERE} h FULL OUTER JOIN {THERE} t "
            "ON t.kind = h.kind AND t.id = h.id AND t.version = h.version "
            f"WHERE h.id IS NULL OR t.id IS NULL OR {differs} ORDER BY 1, 2, 3, 6"
        )
        return count, cursor.fetchall()


def _fill_missing(cursor: CursorWrapper, batch_size: int = 1000) -> None:
    """Rows whose checksums are not stored yet (the import defers them to a job, README "OCL
    checksums") get them here from their stored rendering, as the upstream's listing does: a
    batch of renderings in memory at a time. Nothing is written to the item tables."""
    for kind in (CONCEPTS, MAPPINGS):
        last = 0
        while True:
            cursor.execute(
                f"SELECT h.pk, {item_sql()} FROM {HERE} h JOIN {kind.table} i ON i.id = h.pk "
                "WHERE h.kind = %s AND h.pk > %s AND (h.standard IS NULL OR h.smart IS NULL) ORDER BY h.pk LIMIT %s",
                [kind.key, last, batch_size],
            )
            rows = cursor.fetchall()
            if not rows:
                break
            filled = [(*item_checksums(kind.key, rendered_text(kind, pk, text)), kind.key, pk) for pk, text in rows]
            cursor.executemany(f"UPDATE {HERE} SET standard = %s, smart = %s WHERE kind = %s AND pk = %s", filled)
            last = rows[-1][0]


def pair_up(rows: list[tuple]) -> list[Difference]:
    """An item on one side only under one version id and on the other only under another is one
    change; everything else one-sided is missing on the other side."""
    only_here: dict[tuple[str, str], list[Side]] = {}
    only_there: dict[tuple[str, str], list[Side]] = {}
    differences = []
    for kind, item_id, *sides in rows:
        here = tuple(sides[:3]) if sides[0] is not None else None
        there = tuple(sides[3:]) if sides[3] is not None else None
        if here is not None and there is not None:
            differences.append(Difference(LABELS[kind], item_id, CHANGED, here, there))  # type: ignore[arg-type]
        elif here is not None:
            only_here.setdefault((kind, item_id), []).append(here)  # type: ignore[arg-type]
        else:
            only_there.setdefault((kind, item_id), []).append(there)  # type: ignore[arg-type]
    for key in sorted(only_here.keys() | only_there.keys()):
        kind, item_id = key
        heres, theres = only_here.get(key, []), only_there.get(key, [])
        while heres and theres:
            differences.append(Difference(LABELS[kind], item_id, CHANGED, heres.pop(0), theres.pop(0)))
        differences += [Difference(LABELS[kind], item_id, MISSING_THERE, side, None) for side in heres]
        differences += [Difference(LABELS[kind], item_id, MISSING_HERE, None, side) for side in theres]
    return sorted(differences, key=lambda d: (d.kind, d.id, d.what))
