"""Subscriptions as plain text rows, for the ``subscriptions`` command."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .models import Subscription

HEADERS = ("id", "url", "follows", "every", "token", "last success", "reached", "received", "applied", "last error")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def subscription_rows(subscriptions: Iterable[Subscription]) -> list[tuple[str, ...]]:
    rows = [HEADERS]
    for s in subscriptions:
        error = s.last_error.splitlines()[0][:80] if s.last_error else "-"
        rows.append(
            (
                str(s.pk),
                s.url,
                s.follows,
                f"{s.interval} s",
                s.credentials,
                when(s.last_success),
                when(s.reached),
                f"{s.items_received:,} items, {s.bytes_received:,} B",
                f"{s.items_applied:,}",
                error,
            )
        )
    return rows


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
