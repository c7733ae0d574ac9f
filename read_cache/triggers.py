"""The triggers that tell every web process the database changed (see ``read_cache.store``).

One statement-level trigger per table: a COPY of a million rows notifies once, not a million
times, and PostgreSQL delivers a NOTIFY only when its transaction commits (a rolled-back import
tells nobody) and folds repeats within a transaction into one. They are (re)installed after every
``migrate`` on every table of the apps whose rows the cached answers are made of, so a table a
later migration adds is watched without anyone remembering to.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import connections

CHANNEL = "read_cache"
FUNCTION = "read_cache_notify"
TRIGGER = "read_cache_notify"
# Whose rows make up a cached answer: owners and accounts (visibility), repositories, versions,
# items and memberships, export rows.
WATCHED_APPS = ("auth", "authtoken", "repos", "ocl_export")
# Tables no cached answer reads: the used Location tokens (a redemption is never cached).
UNWATCHED = {"ocl_export.redeemedlocation"}


def watched_tables() -> list[str]:
    tables = []
    for label in WATCHED_APPS:
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            if model._meta.label_lower not in UNWATCHED and model._meta.managed and not model._meta.proxy:
                tables.append(model._meta.db_table)
    return sorted(set(tables))


def install(using: str = "default", **_: Any) -> None:
    """Create or refresh the function and each watched table's trigger (PostgreSQL only)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
        )
        for table in watched_tables():
            if table not in existing:
                continue
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quoted}")
            cursor.execute(
                f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {quoted} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
            )
