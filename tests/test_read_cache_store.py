"""The rule of ``read_cache.store``: nothing kept across a change, nothing served while deaf."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from django.db import connection
from django.test import RequestFactory
from django.urls import resolve

from read_cache.footprint import BOOKKEEPING, footprint
from read_cache.middleware import Kept, route_of
from read_cache.store import Store
from read_cache.triggers import CHANNEL, watched_tables


def listening_store(budget: int = 1024 * 1024, max_age: float = 60) -> Store:
    store = Store(budget, max_age)
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
    store = Store(1024 * 1024, 60)
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


def test_the_store_holds_at_most_its_budget_in_bytes_dropping_the_least_recently_used():
    body = 10_000
    charge = footprint("a", b"x" * body) + BOOKKEEPING
    store = listening_store(budget=2 * charge + charge // 2)  # room for two
    for key in ("a", "b"):
        store.put(key, key.encode() * body, store.ticket())
    assert store.bytes == 2 * charge
    assert store.get("a") is not None  # "b" is now the least recently used
    store.put("c", b"c" * body, store.ticket())
    assert (store.get("a"), store.get("b"), store.get("c")) == (b"a" * body, None, b"c" * body)
    assert store.bytes == 2 * charge <= store.budget


def test_a_value_larger_than_the_whole_budget_is_not_kept_and_evicts_nothing():
    store = listening_store(budget=50_000)
    store.put("small", b"s" * 1000, store.ticket())
    store.put("huge", b"h" * 60_000, store.ticket())
    assert store.get("huge") is None and store.get("small") == b"s" * 1000


def test_keeping_a_key_again_replaces_its_charge():
    store = listening_store()
    store.put("k", b"x" * 50_000, store.ticket())
    store.put("k", b"y" * 10, store.ticket())
    assert len(store) == 1 and store.bytes == footprint("k", b"y" * 10) + BOOKKEEPING


def kept_answer(body_bytes: int, n: int) -> tuple[tuple[str, ...], Kept]:
    """A key and a whole answer as the middleware keeps them: the strings a request parses and a
    response sets are new ones (joined here), the route's names are the URL patterns' own."""
    path = f"/orgs/CIEL/sources/CIEL/v1/concepts/{n}/"
    key = tuple(
        "".join(part) for part in (["G", "ET"], ["ht", "tp"], ["api.", "example"], [""], [path], [f"limit={n}"], [""])
    )
    headers = tuple(
        ("".join([name[:1], name[1:]]), "".join([value[:1], value[1:]]))
        for name, value in (
            ("Content-Type", "application/json"),
            ("Content-Length", str(body_bytes)),
            ("num_found", str(n * 7)),
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Vary", "Accept, Compress"),
        )
    )
    body = b"".join([b'{"id": "', str(n).encode(), b'", "padding": "', b"x" * body_bytes, b'"}'])
    request = RequestFactory().get(path)
    request.resolver_match = resolve(path)
    return key, Kept(200, headers, body, route_of(request), None)


@pytest.mark.parametrize("body_bytes", [200, 2_000, 186_000])
def test_the_bytes_charged_are_within_a_small_factor_of_what_tracemalloc_sees_kept(body_bytes):
    """The charge is what keeping an answer costs, from a 1 KB item to a 186 KB page: measured,
    not assumed, as the memory Python allocated for the store's entries."""
    count = max(20, 4_000_000 // (body_bytes + 2_000))
    store = listening_store(budget=1 << 40)
    kept_answer(body_bytes, 0)  # the URL resolver's caches warm, before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(count):
            key, kept = kept_answer(body_bytes, n)
            store.put(key, kept, store.ticket())
            del key, kept
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(store) == count
    ratio = store.bytes / held
    assert 1.0 <= ratio <= 1.5, f"charged {store.bytes} for {held} allocated ({ratio:.2f}x)"


def test_what_is_held_and_what_went_are_counted_for_metrics():
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    evicted = value("ocl_read_cache_evictions_total", cause="budget")
    store = listening_store(budget=3 * (footprint("k0", b"x" * 1000) + BOOKKEEPING))
    for n in range(5):
        store.put(f"k{n}", b"x" * 1000, store.ticket())
    assert value("ocl_read_cache_held", measure="answers") == 3
    assert value("ocl_read_cache_held", measure="bytes") == store.bytes > 3000
    assert value("ocl_read_cache_evictions_total", cause="budget") == evicted + 2
    store.invalidate()
    assert value("ocl_read_cache_held", measure="bytes") == value("ocl_read_cache_held", measure="answers") == 0


def test_no_answer_outlives_the_maximum_age(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("read_cache.store.time.monotonic", lambda: clock[0])
    store = listening_store(max_age=300)
    store.put("k", "v", store.ticket())
    clock[0] += 299
    assert store.get("k") == "v"
    clock[0] += 2
    assert store.get("k") is None
    assert len(store) == 0 and store.bytes == 0  # and its bytes are free


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
