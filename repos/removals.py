"""What left HEAD since an instant: the ``removed`` list of ``?includeRemoved=true``.

OCL's ``updatedSince`` answers list what changed; a client holding HEAD cannot learn from them
what left it (a reference removed from a collection, a concept hard-deleted, an item missing from
a newer version). This service keeps a tombstone per item that left a HEAD
(``repos.models.HeadRemoval``, written by ``repos.importers.removals``), and a read of HEAD that
asks for them gets one more key after the others, so OCL clients that do not ask see exactly the
bytes they see today::

    "removed": [{"type": "Concept", "id": "1002", "url": "/orgs/CIEL/sources/CIEL/concepts/1002/",
                 "version_url": ".../concepts/1002/57cd6117fffcf000075be847/",
                 "removed_on": "2026-12-06T02:40:00.123456Z"}, ...]

The entries follow the read's own selection: the kinds it includes (includeConcepts,
includeMappings) and its ``updatedSince`` (removed at or after it); an item back in HEAD since it
left is not listed. Oldest removal first, streamed in batches (one entry per item ever removed).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Exists, OuterRef
from django.http import QueryDict
from rest_framework.exceptions import ParseError

from repos.models import HeadRemoval, RepositoryVersion, VersionConcept, VersionMapping
from repos.params import ItemQuery, parse_bool
from repos.representation.encoding import dumps, utc
from repos.representation.items import ItemFilter

PARAMETER = "includeRemoved"
TYPES = {"concepts": "Concept", "mappings": "Mapping"}
BATCH = 2000


def wants_removed(params: QueryDict, version: RepositoryVersion | None, query: ItemQuery) -> bool:
    """``includeRemoved``, checked: true or false; HEAD only; with a list of items to go with.

    ``version`` None: a read of the repository without items (its HEAD is not looked up)."""
    if not parse_bool(params, PARAMETER):
        return False
    if version is not None and not version.is_head:
        raise ParseError(f"{PARAMETER}=true applies to HEAD only: a named version never changes.")
    if not query.wants_items:
        raise ParseError(
            f"{PARAMETER}=true lists removed concepts and mappings: add includeConcepts or includeMappings."
        )
    return True


def removals(head: RepositoryVersion, item_filter: ItemFilter) -> Iterator[dict]:
    """The tombstones a read of ``head`` with ``item_filter`` lists, oldest first."""
    kinds = [
        key
        for key, wanted in (("concepts", item_filter.include_concepts), ("mappings", item_filter.include_mappings))
        if wanted
    ]
    rows = HeadRemoval.objects.filter(head=head, kind__in=kinds)
    if item_filter.updated_since is not None:
        rows = rows.filter(removed_on__gte=item_filter.updated_since)
    # An item back in HEAD (any version of it) has not left it.
    back = {
        "concepts": VersionConcept.objects.filter(
            repositoryversion=head,
            conceptversion__source=OuterRef("source"),
            conceptversion__mnemonic=OuterRef("mnemonic"),
        ),
        "mappings": VersionMapping.objects.filter(
            repositoryversion=head,
            mappingversion__source=OuterRef("source"),
            mappingversion__mnemonic=OuterRef("mnemonic"),
        ),
    }
    for key in kinds:
        rows = rows.exclude(Exists(back[key]), kind=key)
    fields = ("kind", "mnemonic", "url", "version_url", "removed_on")
    for kind, mnemonic, url, version_url, removed_on in (
        rows.order_by("removed_on", "id").values_list(*fields).iterator(BATCH)
    ):
        yield {
            "type": TYPES[kind],
            "id": mnemonic,
            "url": url,
            "version_url": version_url,
            "removed_on": utc(removed_on),
        }


def with_removed(chunks: Iterator[bytes], head: RepositoryVersion, item_filter: ItemFilter) -> Iterator[bytes]:
    """The body ``chunks`` of a read of ``head``, with ``"removed": [...]`` as its last key."""
    pending: bytes | None = None
    for chunk in chunks:
        if pending is not None:
            yield pending
        pending = chunk
    if pending is None or not pending.endswith(b"}"):
        raise AssertionError("a version's body ends with its closing brace")
    yield pending[:-1] + b',"removed":['
    separator = b""
    for entry in removals(head, item_filter):
        yield separator + dumps(entry)
        separator = b","
    yield b"]}"
