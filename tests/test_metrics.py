"""``/metrics``: who may read it, and what the service counts there (in one process; the sums over
gunicorn workers and RQ work horses are in tests/live/test_operations_live.py)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ocl_export import metrics
from ocl_export.models import ExportState
from ocl_export.reaper import reap_exports
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
