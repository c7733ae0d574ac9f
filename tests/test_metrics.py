"""``/metrics``: who may read it, and what the service counts there (in one process; the sums over
gunicorn workers and RQ work horses are in tests/live/test_operations_live.py). A scrape answers
with what it can read, on time, when Redis or the database is down, or the export table locked."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from observability import metrics
from ocl_export.models import ExportState
from ocl_export.reaper import reap_exports
from operations import scrape
from tests.export_support import EXPORT_URL, ciel_v1, the_export, work
from tests.live.stack import free_port

TOKEN = "metrics-test-token"

pytestmark = pytest.mark.django_db


@pytest.fixture
def scraper(settings) -> Client:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_BIND_PORT = None
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def samples(client: Client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(snapshot: dict, name: str, **labels: str) -> float:
    return snapshot.get((name, frozenset(labels.items())), 0.0)


def test_metrics_are_off_until_a_token_or_a_listener_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_BIND_PORT = None
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "METRICS_TOKEN" in response.json()["detail"]


def test_metrics_need_the_bearer_token(client, scraper):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    assert wrong.json()["detail"]
    assert scraper.get("/metrics").status_code == 200


def test_metrics_bound_to_a_listener_answer_there_only(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_BIND_PORT = 9464
    assert client.get("/metrics", SERVER_PORT="8000").status_code == 404
    assert client.get("/metrics", SERVER_PORT="9464").status_code == 200


def test_requests_are_counted_by_route_name_and_status_never_by_path(client, scraper, org):
    before = samples(scraper)
    client.get("/orgs/CIEL/sources/NoSuchSource/")
    client.get("/orgs/CIEL/sources/NoSuchSource/")
    client.get("/nothing/here/at/all")
    after = samples(scraper)
    route = {"route": "repository-detail", "method": "GET", "status": "404"}
    assert value(after, "ocl_http_requests_total", **route) - value(before, "ocl_http_requests_total", **route) == 2
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert (
        value(after, "ocl_http_requests_total", **unmatched) - value(before, "ocl_http_requests_total", **unmatched)
        == 1
    )
    latency = {"route": "repository-detail", "method": "GET"}
    count = "ocl_http_request_duration_seconds_count"
    assert value(after, count, **latency) - value(before, count, **latency) == 2
    assert not any("/" in label for _, labels in after for _, label in labels)


def test_every_answer_carries_a_request_id_the_callers_own_when_it_sends_one(client):
    made = client.get("/healthz")["X-Request-ID"]
    assert len(made) == 32
    assert client.get("/healthz")["X-Request-ID"] != made
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234")["X-Request-ID"] == "lb-1234"
    assert client.get("/healthz", HTTP_X_REQUEST_ID="has spaces")["X-Request-ID"] != "has spaces"


@pytest.mark.django_db(transaction=True)  # the job is queued on commit
def test_an_export_is_counted_from_the_queue_to_its_downloads(
    org, alice_client, client, scraper, redis_conn, fs_storage
):
    version = ciel_v1(org)
    before = samples(scraper)
    assert alice_client.post(EXPORT_URL).status_code == 202
    queued = samples(scraper)
    assert value(queued, "ocl_exports", state="pending", format="tgz") == 1
    assert value(queued, "ocl_export_queue_depth") == 1
    assert value(queued, "ocl_export_queue_oldest_age_seconds") >= 0
    work()
    location = client.get(EXPORT_URL)["Location"]
    assert client.get(location).status_code == 200
    assert client.get(location).status_code == 410
    assert client.get(location.replace("/exports/download/", "/exports/download/x")).status_code == 404
    after = samples(scraper)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "ocl_exports", state="completed", format="tgz") == 1
    assert value(after, "ocl_export_queue_depth") == 0
    assert delta("ocl_exports_finished_total", format="tgz", outcome="completed") == 1
    for histogram in ("ocl_export_duration_seconds", "ocl_export_size_bytes", "ocl_export_items_per_second"):
        assert delta(f"{histogram}_count", format="tgz") == 1, histogram
    assert delta("ocl_export_size_bytes_sum", format="tgz") == the_export(version).size
    redemptions = "ocl_location_redemptions_total"
    assert delta(redemptions, result="redeemed") == 1
    assert delta(redemptions, result="refused_used_or_expired") == 1
    assert delta(redemptions, result="refused_unknown") == 1


def test_the_reaper_counts_what_it_failed_and_deleted(org, alice_client, scraper, redis_conn, fs_storage, settings):
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    export = the_export(version)
    long_ago = timezone.now() - timedelta(hours=1)
    export.transition(ExportState.PROCESSING, started_on=long_ago, heartbeat_on=long_ago)
    before = samples(scraper)
    summary = reap_exports()
    after = samples(scraper)
    assert summary.failed == 1
    failed = {"action": "failed"}
    assert value(after, "ocl_reaper_actions_total", **failed) - value(before, "ocl_reaper_actions_total", **failed) == 1
    lost = {"reason": "worker_lost", "retrying": "false"}
    assert value(after, "ocl_export_failures_total", **lost) - value(before, "ocl_export_failures_total", **lost) == 1


def test_a_scrape_still_answers_when_redis_is_down(scraper, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    snapshot = samples(scraper)
    assert value(snapshot, "ocl_scrape_errors", source="redis") == 1
    assert value(snapshot, "ocl_scrape_errors", source="database") == 0
    assert ("ocl_export_queue_depth", frozenset()) not in snapshot


@pytest.fixture
def locked_exports(transactional_db) -> Iterator[psycopg.Connection]:
    """Another connection holds the export table in ACCESS EXCLUSIVE mode (as a migration of it
    would) until the test rolls it back: every read of the table waits for it."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params) as locker:
        locker.execute("LOCK TABLE ocl_export_export IN ACCESS EXCLUSIVE MODE")
        yield locker
        locker.rollback()


def has(snapshot: dict, name: str) -> bool:
    return any(sample == name for sample, _ in snapshot)


@pytest.mark.django_db(transaction=True)
def test_a_scrape_answers_on_time_without_the_export_counts_while_the_export_table_is_locked(
    client, scraper, locked_exports, monkeypatch, caplog
):
    monkeypatch.setattr(scrape, "DATABASE_TIMEOUT", 1)
    client.get("/healthz")  # something of this process's own to report
    started = time.monotonic()
    snapshot = samples(scraper)
    assert time.monotonic() - started < 2.5
    assert value(snapshot, "ocl_scrape_errors", source="database") == 1
    assert value(snapshot, "ocl_scrape_errors", source="redis") == 0
    assert not has(snapshot, "ocl_exports")
    assert value(snapshot, "ocl_http_requests_total", route="healthz", method="GET", status="200") >= 1
    assert has(snapshot, "ocl_export_queue_depth")
    assert "metrics: could not read database" in caplog.text
    assert "statement timeout" in caplog.text

    locked_exports.rollback()  # the lock is gone: the next scrape counts the exports again
    snapshot = samples(scraper)
    assert value(snapshot, "ocl_scrape_errors", source="database") == 0
    assert value(snapshot, "ocl_exports", state="pending", format="tgz") == 0
    assert has(snapshot, "ocl_exports")


def test_the_scrape_bound_does_not_outlive_it_inside_an_outer_transaction(scraper):
    """Under ATOMIC_REQUESTS (or this test's transaction) the bound is set in a savepoint."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        (before,) = cursor.fetchone()
    samples(scraper)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == (before,)


@pytest.mark.django_db(transaction=True)
def test_a_scrape_still_answers_when_the_database_refuses_connections(client, scraper, monkeypatch, caplog):
    client.get("/healthz")
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "PORT", str(free_port()))
    try:
        started = time.monotonic()
        snapshot = samples(scraper)
        assert time.monotonic() - started < 2.5
    finally:
        connection.close()
        monkeypatch.undo()
    assert value(snapshot, "ocl_scrape_errors", source="database") == 1
    assert not has(snapshot, "ocl_exports")
    assert value(snapshot, "ocl_http_requests_total", route="healthz", method="GET", status="200") >= 1
    assert "metrics: could not read database" in caplog.text


def test_a_named_process_writes_under_its_name_and_a_fork_of_it_under_its_own_pid(monkeypatch):
    monkeypatch.setattr(metrics, "_identity", {"pid": None, "identity": ""})
    assert metrics.process_identity() == f"{metrics.HOST}_{os.getpid()}"
    metrics.name_process("reaper")
    assert metrics.process_identity() == f"{metrics.HOST}_reaper"
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # a work horse, say: it must not write into its parent's file
        os.write(write_end, metrics.process_identity().encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read_end, 200).decode() == f"{metrics.HOST}_{child}"


def test_a_made_request_id_differs_in_each_forked_worker() -> None:
    """Made from the process's random generator, which each forked gunicorn worker reseeds: two
    workers forked from one arbiter must not hand out the same ids."""
    from operations.middleware import new_request_id

    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    childs = os.read(read, 64).decode()
    os.close(read)
    ours = new_request_id()
    assert len(childs) == len(ours) == 32 and int(childs, 16) >= 0
    assert childs != ours
