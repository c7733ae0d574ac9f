"""The triggers that tell every web process the database changed (see ``read_cache.store``).

One statement-level trigger per table: a COPY of a million rows notifies once, not a million
times, and PostgreSQL delivers a NOTIFY only when its transaction commits (a rolled-back import
tells nobody) and folds repeats within a transaction into one. They are (re)installed after every
``migrate`` on every table of the apps whose rows the cached answers are made of, so a table a
later migration adds is watched without anyone remembering to.

Those apps say so themselves, on their ``AppConfig`` (this app, the lowest, names none above it)::

    class SomeConfig(AppConfig):
        read_cache_watch = True  # cached answers are made of this app's rows
        read_cache_unwatched = ("somemodel",)  # optional: models no cached answer reads
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.db import connections

CHANNEL = "read_cache"
FUNCTION = "read_cache_notify"
TRIGGER = "read_cache_notify"
# The AppConfig attributes by which an app declares its tables watched, and the models among
# them (by model name) that no cached answer reads.
WATCH = "read_cache_watch"
UNWATCHED = "read_cache_unwatched"
# Watched for this app's own sake: the accounts and tokens that its token authentication keeps
# (``read_cache.authentication``) and that decide what a caller may see.
OWN_WATCHED_APPS = ("auth", "authtoken")


def watched_apps() -> list[AppConfig]:
    """The installed apps whose rows make up a cached answer."""
    return [
        config
        for config in apps.get_app_configs()
        if config.label in OWN_WATCHED_APPS or getattr(config, WATCH, False) is True
    ]


def watched_tables() -> list[str]:
    tables = []
    for config in watched_apps():
        unwatched = set(getattr(config, UNWATCHED, ()))
        for model in config.get_models(include_auto_created=True):
            if model._meta.model_name not in unwatched and model._meta.managed and not model._meta.proxy:
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
