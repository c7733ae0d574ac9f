"""JSON encoding shared by every shape: bytes from orjson, timestamps in UTC ending in ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

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
