"""Model instances from one joined row, with SQL whose text is built once.

The read path's hottest lookups (a repository with its owner, a version with its repository, an
export with both) are one joined query each. Built with the ORM, each call spent about 1 ms of
CPU compiling that query (``filter``, ``select_related``, the compiler): two thirds of such a
request's CPU under load, measured with py-spy on a gunicorn worker, far more than PostgreSQL
takes to answer. Here the statement's text is made once per shape from the models' own metadata,
each call only sends it with its parameters, and each part of the row becomes an instance through
``Model.from_db``, with the fields' own converters (JSON columns arrive as text), as the ORM does.

On PostgreSQL these statements are also prepared, once per connection: planning a five-table
join took PostgreSQL 0.7-1.4 ms, more than executing it (0.1 ms), on every request. Django leaves
prepared statements off because a transaction-mode pooler (PgBouncer before 1.21) cannot follow
them from one server connection to the next; DATABASE_PREPARED_STATEMENTS=False turns them off
here too for such a deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, models
from django.db.backends.utils import CursorWrapper


@dataclass(frozen=True)
class Part:
    """One model's columns in a joined row, read from the table under ``alias``."""

    model: type[models.Model]
    alias: str

    @cached_property
    def fields(self) -> list[models.Field]:
        return list(self.model._meta.concrete_fields)

    @cached_property
    def attnames(self) -> list[str]:
        return [field.attname for field in self.fields]

    @cached_property
    def converters(self) -> list[tuple[int, Any]]:
        return [(n, field.from_db_value) for n, field in enumerate(self.fields) if hasattr(field, "from_db_value")]

    def select(self) -> str:
        return ", ".join(f'{self.alias}."{field.column}"' for field in self.fields)

    def instance(self, values: Sequence[Any]) -> models.Model | None:
        """None for the NULL side of a LEFT JOIN (its primary key is NULL)."""
        if values[self.attnames.index(self.model._meta.pk.attname)] is None:
            return None
        values = list(values)
        for n, convert in self.converters:
            values[n] = convert(values[n], None, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


class PreparedCursor(psycopg.Cursor):
    """psycopg's server-side binding cursor, preparing every statement it executes (psycopg keeps
    one prepared statement per distinct text and connection, and reuses it)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs["prepare"] = True
        return super().execute(query, params, **kwargs)


def hot_cursor() -> CursorWrapper:
    """A cursor for a hot statement whose text never varies: prepared on PostgreSQL (see above),
    wrapped as Django wraps its cursors. Django's own cursor elsewhere, and while queries are
    being logged (DEBUG, ``CaptureQueriesContext``): its log reads the SQL back from client-side
    binding, which a prepared statement does not have."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS or connection.queries_logged:
        return connection.cursor()
    connection.ensure_connection()
    return connection.make_cursor(PreparedCursor(connection.connection))


def select_list(parts: Sequence[Part]) -> str:
    return ", ".join(part.select() for part in parts)


def fetch_all(sql: str, params: Sequence[Any], parts: Sequence[Part]) -> list[list[Any]]:
    """Every row of ``sql`` as :func:`fetch_first` gives one."""
    with hot_cursor() as cursor:
        cursor.execute(sql, params)
        return [_instances(row, parts) for row in cursor.fetchall()]


def fetch_first(sql: str, params: Sequence[Any], parts: Sequence[Part]) -> list[Any] | None:
    """The instances of the first row of ``sql`` (which selects ``select_list(parts)`` first), then
    the row's remaining values as they are; None when there is no row."""
    with hot_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else _instances(row, parts)


def _instances(row: Sequence[Any], parts: Sequence[Part]) -> list[Any]:
    found: list[Any] = []
    start = 0
    for part in parts:
        end = start + len(part.fields)
        found.append(part.instance(row[start:end]))
        start = end
    return [*found, *row[start:]]
