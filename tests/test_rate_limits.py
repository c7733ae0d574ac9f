"""Rate limits: POST and DELETE of exports per user, anonymous reads per address (when set),
429 with Retry-After and the JSON error shape, staff never limited, and a Redis that is away lets
requests through. Across two real web processes: tests/live/test_rate_limits_live.py."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from observability import metrics
from tests.export_support import EXPORT_URL, ciel_v1
from tests.live.stack import free_port

pytestmark = pytest.mark.django_db(transaction=True)

VERSION_URL = EXPORT_URL.removesuffix("export/")


def refused_the_same_way(response) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Request was throttled.")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_a_user_past_the_limit_gets_429_with_retry_after(org, alice_client, settings, redis_conn) -> None:
    settings.RATE_LIMIT_EXPORT_WRITES = "3/minute"
    ciel_v1(org)
    statuses = [alice_client.post(EXPORT_URL).status_code for _ in range(3)]
    assert statuses == [202, 409, 409]
    refused_the_same_way(alice_client.post(EXPORT_URL))
    refused_the_same_way(alice_client.delete(EXPORT_URL))


def test_posts_and_deletes_share_one_count_per_user(org, alice_client, bob_client, settings, redis_conn) -> None:
    settings.RATE_LIMIT_EXPORT_WRITES = "2/minute"
    ciel_v1(org)
    assert alice_client.post(EXPORT_URL).status_code == 202
    assert alice_client.delete(EXPORT_URL).status_code == 202  # pending: cancelled, and counted
    assert alice_client.post(EXPORT_URL).status_code == 429
    assert bob_client.post(EXPORT_URL).status_code == 202  # bob's count is his own: he asks again


def test_reads_do_not_count_against_the_write_limit(org, alice_client, settings, redis_conn) -> None:
    settings.RATE_LIMIT_EXPORT_WRITES = "1/minute"
    ciel_v1(org)
    for _ in range(5):
        assert alice_client.get(EXPORT_URL).status_code == 204
    assert alice_client.post(EXPORT_URL).status_code == 202
    assert alice_client.post(EXPORT_URL).status_code == 429


def test_staff_are_never_limited(org, staff_client, settings, redis_conn) -> None:
    settings.RATE_LIMIT_EXPORT_WRITES = "1/minute"
    ciel_v1(org)
    statuses = {staff_client.post(EXPORT_URL).status_code for _ in range(5)}
    assert statuses == {202, 409}


def test_the_default_stops_40_posts_in_a_minute(org, alice_client, settings, redis_conn) -> None:
    settings.RATE_LIMIT_EXPORT_WRITES = "30/hour"  # the production default (off in tests/settings.py)
    ciel_v1(org)
    statuses = [alice_client.post(EXPORT_URL).status_code for _ in range(40)]
    assert statuses.count(429) == 10 and 429 not in statuses[:30]


def test_anonymous_reads_are_not_limited_by_default(org, anon_client, redis_conn) -> None:
    assert django_settings.RATE_LIMIT_ANONYMOUS_READS == ""
    ciel_v1(org)
    assert {anon_client.get(VERSION_URL).status_code for _ in range(20)} == {200}


def test_anonymous_reads_are_limited_per_address_when_set(org, anon_client, alice_client, settings, redis_conn) -> None:
    settings.RATE_LIMIT_ANONYMOUS_READS = "3/minute"
    ciel_v1(org)
    assert [anon_client.get(VERSION_URL).status_code for _ in range(3)] == [200, 200, 200]
    refused_the_same_way(anon_client.get(VERSION_URL))
    refused_the_same_way(anon_client.get("/orgs/CIEL/sources/"))  # every read of the API
    assert anon_client.get(VERSION_URL, REMOTE_ADDR="192.0.2.7").status_code == 200  # another address
    assert alice_client.get(VERSION_URL).status_code == 200  # a token is not anonymous
    assert anon_client.get("/healthz").status_code == 200  # probes come from one address


def test_a_session_is_not_anonymous(org, client, staff, settings, redis_conn) -> None:
    settings.RATE_LIMIT_ANONYMOUS_READS = "1/minute"
    ciel_v1(org)
    client.force_login(staff)
    assert {client.get(VERSION_URL).status_code for _ in range(3)} == {200}


def test_when_redis_is_away_requests_go_through_and_are_counted(org, alice_client, settings, caplog) -> None:
    """The counts live in the queue's Redis: a POST then answers the queue's 503, never a 500, and
    reads go on."""
    settings.RATE_LIMIT_EXPORT_WRITES = "1/minute"
    settings.RATE_LIMIT_ANONYMOUS_READS = "1/minute"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    ciel_v1(org)
    unchecked = metrics.RATE_LIMIT_CHECKS.labels("unchecked")
    before = unchecked._value.get()
    with caplog.at_level(logging.WARNING, logger="ocl_export.throttling"):
        posts = [alice_client.post(EXPORT_URL) for _ in range(2)]
        reads = [APIClient().get(VERSION_URL).status_code for _ in range(3)]
    assert [(post.status_code, "Retry-After" in post) for post in posts] == [(503, True), (503, True)]
    assert reads == [200, 200, 200]
    assert unchecked._value.get() - before == 5
    warnings = [record for record in caplog.records if "Redis did not answer" in record.message]
    assert len(warnings) == 1  # then this process stops asking for a while


@pytest.fixture(autouse=True)
def no_pause_left_over():
    """A test that met an absent Redis leaves this process pausing its checks; the next must not."""
    from ocl_export import throttling

    throttling._pause["until"] = 0.0
    yield
    throttling._pause["until"] = 0.0
