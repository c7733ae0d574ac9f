"""The rule of ``read_cache.store``: nothing kept across a change, nothing served while deaf."""

from __future__ import annotations

import pytest
from django.db import connection

from read_cache.store import Store
from read_cache.triggers import CHANNEL, watched_tables


def listening_store(entries: int = 10, max_age: float = 60) -> Store:
    store = Store(entries, max_age)
    store.set_listening(True)
    return store


def test_an_answer_is_kept_and_served_until_a_change_is_heard():
    store = listening_store()
    assert store.remember("k", lambda: "first") == "first"
    assert store.remember("k", lambda: "second") == "first"
    store.invalidate()
    assert store.remember("k", lambda: "third") == "third"


def test_a_read_that_began_before_a_change_is_not_kept():
    store = listening_store()
    ticket = store.ticket()
    store.invalidate()  # the change is heard while the read is under way
    store.put("k", "read before the change", ticket)
    assert store.get("k") is None


def test_nothing_is_kept_or_served_while_the_listener_is_not_connected():
    store = Store(10, 60)
    assert store.ticket() is None
    assert store.remember("k", lambda: "v") == "v"
    assert store.get("k") is None

    store.set_listening(True)
    store.put("k", "v", store.ticket())
    assert store.get("k") == "v"
    # The connection drops: changes may go unheard from now on, so what is kept goes too.
    store.set_listening(False)
    assert store.get("k") is None
    # and a read begun while connected is not kept once disconnected
    store.set_listening(True)
    ticket = store.ticket()
    store.set_listening(False)
    store.set_listening(True)
    store.put("k", "v", ticket)
    assert store.get("k") is None


def test_a_notification_waiting_unread_counts_as_a_change():
    store = listening_store()
    store.put("k", "v", store.ticket())
    waiting = [False]
    store.pending = lambda: waiting[0]
    assert store.get("k") == "v"
    waiting[0] = True
    assert store.get("k") is None


def test_the_store_holds_at_most_its_entries_dropping_the_least_recently_used():
    store = listening_store(entries=2)
    for key in ("a", "b"):
        store.put(key, key, store.ticket())
    assert store.get("a") == "a"  # "b" is now the least recently used
    store.put("c", "c", store.ticket())
    assert (store.get("a"), store.get("b"), store.get("c")) == ("a", None, "c")


def test_no_answer_outlives_the_maximum_age(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("read_cache.store.time.monotonic", lambda: clock[0])
    store = listening_store(max_age=300)
    store.put("k", "v", store.ticket())
    clock[0] += 299
    assert store.get("k") == "v"
    clock[0] += 2
    assert store.get("k") is None


@pytest.mark.django_db
def test_every_table_cached_answers_are_made_of_has_the_trigger():
    tables = watched_tables()
    assert {"repos_repository", "repos_conceptversion", "repos_version_concepts", "ocl_export_export"} <= set(tables)
    assert "auth_user" in tables and "authtoken_token" in tables
    assert "ocl_export_redeemedlocation" not in tables
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = 'read_cache_notify'"
        )
        triggered = {row[0] for row in cursor.fetchall()}
    assert set(tables) <= triggered


def test_the_apps_that_own_the_tables_declare_them_watched(monkeypatch):
    from django.apps import apps

    subscriptions = apps.get_model("mirror", "subscription")._meta.db_table
    assert subscriptions not in watched_tables()  # mirror declares nothing: not watched
    repos = apps.get_app_config("repos")
    monkeypatch.setattr(repos, "read_cache_unwatched", ("organization",), raising=False)
    tables = watched_tables()
    assert "repos_organization" not in tables and "repos_repository" in tables
    monkeypatch.setattr(repos, "read_cache_watch", False)
    assert not any(table.startswith("repos_") for table in watched_tables())
    assert "ocl_export_export" in watched_tables()


@pytest.mark.django_db(transaction=True)
def test_a_change_is_notified_once_per_statement_and_only_when_it_commits():
    import psycopg

    from repos.models import Organization

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        def heard() -> list[str]:
            return [n.payload for n in listener.notifies(timeout=0.5)]

        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            Organization.objects.create(mnemonic="A", name="A")
            Organization.objects.create(mnemonic="B", name="B")
            assert heard() == []  # not before the commit
            cursor.execute("ROLLBACK")
        assert heard() == []  # nor ever, when it rolls back
        Organization.objects.bulk_create([Organization(mnemonic=f"O{n}", name="x") for n in range(100)])
        assert heard() == ["repos_organization"]  # a hundred rows, one statement, one notification


def test_lookups_and_emptyings_are_counted_for_metrics():
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "hit": value("ocl_read_cache_lookups_total", outcome="hit"),
        "miss": value("ocl_read_cache_lookups_total", outcome="miss"),
        "change": value("ocl_read_cache_emptied_total", cause="change"),
        "lost": value("ocl_read_cache_emptied_total", cause="connection_lost"),
    }
    store = listening_store()
    store.remember("k", lambda: "v")  # a miss, then kept
    store.remember("k", lambda: "v")  # a hit
    store.invalidate()
    store.set_listening(False)
    assert value("ocl_read_cache_lookups_total", outcome="hit") == before["hit"] + 1
    assert value("ocl_read_cache_lookups_total", outcome="miss") == before["miss"] + 1
    assert value("ocl_read_cache_emptied_total", cause="change") == before["change"] + 1
    assert value("ocl_read_cache_emptied_total", cause="connection_lost") == before["lost"] + 1


def test_the_key_holds_everything_a_kept_answer_is_made_from(rf):
    from read_cache.middleware import cache_key

    base = cache_key(rf.get("/orgs/CIEL/sources/CIEL/?a=1", HTTP_HOST="api.example"))
    variants = [
        rf.head("/orgs/CIEL/sources/CIEL/?a=1", HTTP_HOST="api.example"),
        rf.get("/orgs/CIEL/sources/CIEL/?a=2", HTTP_HOST="api.example"),
        rf.get("/orgs/CIEL/sources/CIEL/?a=1", HTTP_HOST="other.example"),
        rf.get("/orgs/CIEL/sources/CIEL/?a=1", HTTP_HOST="api.example", HTTP_X_FORWARDED_HOST="public.example"),
        rf.get("/orgs/CIEL/sources/CIEL/?a=1", HTTP_HOST="api.example", HTTP_AUTHORIZATION="Token abc"),
        rf.get("/orgs/CIEL/sources/CIEL/?a=1", HTTP_HOST="api.example", secure=True),
    ]
    keys = [cache_key(request) for request in variants]
    assert base not in keys and len(set(keys)) == len(keys)
    assert cache_key(rf.post("/orgs/CIEL/sources/CIEL/", HTTP_HOST="api.example")) is None
    assert cache_key(rf.get("/orgs/CIEL/sources/CIEL/", HTTP_HOST="api.example", HTTP_COMPRESS="true")) is None
