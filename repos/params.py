"""Query parameters of the read API, parsed strictly: a value we cannot read is a 400, never ignored.

A client that asks for ``updatedSince=yesterday`` and silently receives everything would
believe it is in sync; so every parameter either parses or answers a JSON error naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.http import QueryDict
from rest_framework.exceptions import ParseError

from repos.representation.items import ItemFilter

# Page size when a client asks for items without saying how many. Items are heavy (a CIEL concept
# is a few kB) and a client that wants everything says limit=0, so a page is kept small.
DEFAULT_LIMIT = 25

# PostgreSQL's LIMIT/OFFSET are bigint; anything near that is a typo, not a page.
MAX_COUNT = 2**53

_DIGITS = re.compile(r"\d+")
# lastUpdated as it appears in export file names: YYYYMMDDHHMMSS, UTC.
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})")
# An unencoded "+hh:mm" offset arrives as " hh:mm" (a "+" in a query string means a space);
# put the plus back instead of rejecting what the client meant.
_SPACED_OFFSET = re.compile(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)")


def bad(name: str, value: str, expected: str) -> ParseError:
    """A 400 whose detail names the parameter: ``{"detail": "..."}`` through the one handler."""
    return ParseError(f"Invalid {name}={value!r}: expected {expected}.")


def parse_bool(params: QueryDict, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise bad(name, raw, "true or false")


def parse_count(params: QueryDict, name: str) -> int | None:
    """A non-negative whole number, or None when the parameter is absent."""
    raw = params.get(name)
    if raw is None:
        return None
    stripped = raw.strip()
    if not _DIGITS.fullmatch(stripped) or int(stripped) > MAX_COUNT:
        raise bad(name, raw, "a non-negative whole number")
    return int(stripped)


def parse_instant(raw: str) -> datetime | None:
    """An aware datetime from ISO 8601 or the compact 14-digit form; None when unreadable.

    A date alone means its midnight, a date-time without an offset is UTC (the contract's rule,
    and what export file names and OCL timestamps mean).
    """
    text = raw.strip()
    compact = _COMPACT.fullmatch(text)
    if compact:
        try:
            return datetime(*(int(part) for part in compact.groups()), tzinfo=UTC)
        except ValueError:
            return None
    spaced = _SPACED_OFFSET.fullmatch(text)
    if spaced:
        text = f"{spaced.group(1)}+{spaced.group(2)}"
    if len(text) < 8:
        # fromisoformat takes reduced forms such as "2023" or "2023-05" that no client means
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_updated_since(params: QueryDict) -> datetime | None:
    raw = params.get("updatedSince")
    if raw is None:
        return None
    value = parse_instant(raw)
    if value is None:
        raise bad(
            "updatedSince",
            raw,
            "an ISO 8601 date or date-time (Z, an offset, or none for UTC) or YYYYMMDDHHMMSS",
        )
    return value


# What parse_item_query reads: a view answering with it declares them to read_cache (keep(reads=)).
ITEM_QUERY_PARAMETERS = frozenset(
    {"includeConcepts", "includeMappings", "includeRetired", "limit", "offset", "updatedSince"}
)
# ?checksums=true: OCL's checksums added where oclapi2 returns them (repos.checksum_store).
CHECKSUMS_PARAMETER = "checksums"


@dataclass(frozen=True)
class ItemQuery:
    """The parsed parameters: what to select, and which page of each included list."""

    item_filter: ItemFilter
    limit: int  # 0: everything
    offset: int

    @property
    def wants_items(self) -> bool:
        return self.item_filter.include_concepts or self.item_filter.include_mappings

    @property
    def is_unbounded(self) -> bool:
        return self.limit == 0


def parse_item_query(
    params: QueryDict, *, concepts: bool = False, mappings: bool = False, whole: bool = False
) -> ItemQuery:
    """includeConcepts, includeMappings, includeRetired, limit, offset and updatedSince.

    ``concepts``/``mappings`` force a list on (the ``.../concepts/`` listings). Without ``limit``
    a page holds :data:`DEFAULT_LIMIT` items; ``limit=0`` means every item, streamed. ``whole``
    (a zipped answer, ``Compress: true``) takes every matching item whatever ``limit`` and
    ``offset`` say, as OCL v2 does: OpenMRS sends ``limit=100000`` with its incremental updates
    and would silently miss the changes past it. The two are still checked.
    """
    include_concepts = parse_bool(params, "includeConcepts") or concepts
    include_mappings = parse_bool(params, "includeMappings") or mappings
    include_retired = parse_bool(params, "includeRetired")
    limit = parse_count(params, "limit")
    offset = parse_count(params, "offset") or 0
    updated_since = parse_updated_since(params)
    if whole:
        limit, offset = 0, 0
    elif limit is None:
        limit = DEFAULT_LIMIT
    item_filter = ItemFilter(
        include_concepts=include_concepts,
        include_mappings=include_mappings,
        include_retired=include_retired,
        updated_since=updated_since,
        offset=offset,
        limit=None if limit == 0 else limit,
    )
    return ItemQuery(item_filter=item_filter, limit=limit, offset=offset)
