"""POST .../:version/export/: 401, 202 with the job, 409 while under way, one job whatever the
concurrency, 503 when the queue is down."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from ocl_export.models import Export, ExportState
from tests.conftest import client_for
from tests.export_support import EXPORT_URL, ciel_v1, queued_job_ids, the_export

pytestmark = pytest.mark.django_db(transaction=True)


def test_anonymous_callers_get_401(org, anon_client, redis_conn) -> None:
    ciel_v1(org)
    response = anon_client.post(EXPORT_URL)
    assert response.status_code == 401
    assert response.json()["detail"]
    assert not Export.objects.exists()


def test_it_answers_202_with_the_job_and_queues_one_rq_job(org, bob_client, bob, redis_conn) -> None:
    version = ciel_v1(org)
    response = bob_client.post(EXPORT_URL)
    assert response.status_code == 202
    body = response.json()
    export = the_export(version)
    assert body["id"] == export.pk
    assert {key: body[key] for key in ("state", "format", "percent", "items_done", "items_total")} == {
        "state": "pending",
        "format": "tgz",
        "percent": 0,
        "items_done": 0,
        "items_total": None,
    }
    assert body["url"] == f"http://testserver/exports/jobs/{export.pk}/"
    assert body["created_on"].endswith("Z")
    assert (export.requested_by, export.attempts) == (bob, 1)
    assert export.job_id.startswith(f"export-{export.pk}-1-")
    assert queued_job_ids() == [export.job_id]


def test_a_second_post_while_pending_is_409(org, alice_client, bob_client, redis_conn) -> None:
    ciel_v1(org)
    assert alice_client.post(EXPORT_URL).status_code == 202
    response = bob_client.post(EXPORT_URL)
    assert response.status_code == 409
    assert response.json()["detail"]
    assert len(queued_job_ids()) == 1


def test_a_second_post_while_processing_is_409(org, alice_client, redis_conn) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    the_export(version).transition(ExportState.PROCESSING, started_on=timezone.now(), heartbeat_on=timezone.now())
    assert alice_client.post(EXPORT_URL).status_code == 409


def test_a_failed_export_is_queued_again_with_a_new_job_id(org, alice_client, alice, redis_conn) -> None:
    version = ciel_v1(org)
    export = Export.create_pending(version, "tgz", alice)
    assert export.transition(ExportState.FAILED, error="boom", finished_on=timezone.now())
    response = alice_client.post(EXPORT_URL)
    assert response.status_code == 202
    export.refresh_from_db()
    assert (export.state, export.attempts, export.error) == (ExportState.PENDING, 2, "")
    assert queued_job_ids() == [export.job_id] and export.job_id.startswith(f"export-{export.pk}-2-")


def test_formats_are_separate_exports(org, alice_client, redis_conn) -> None:
    ciel_v1(org)
    assert alice_client.post(EXPORT_URL).status_code == 202
    assert alice_client.post(f"{EXPORT_URL}?format=zip").status_code == 202
    assert sorted(Export.objects.values_list("format", flat=True)) == ["tgz", "zip"]
    assert alice_client.post(f"{EXPORT_URL}?format=7z").status_code == 400


def test_concurrent_posts_give_exactly_one_202_and_one_job(org, alice, redis_conn) -> None:
    version = ciel_v1(org)
    threads_count = 30
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        client = client_for(alice)
        try:
            barrier.wait(timeout=30)
            status = client.post(EXPORT_URL).status_code
            with lock:
                statuses.append(status)
        finally:
            connection.close()  # each thread has its own database connection

    threads = [threading.Thread(target=post) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert Counter(statuses) == Counter({202: 1, 409: threads_count - 1})
    assert Export.objects.filter(version=version).count() == 1
    assert queued_job_ids() == [the_export(version).job_id]


def test_redis_down_is_503_with_retry_after_and_leaves_no_pending_row(org, alice_client, redis_conn, settings) -> None:
    version = ciel_v1(org)
    working_redis = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = alice_client.post(EXPORT_URL)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["detail"]
    export = the_export(version)
    assert export.state == ExportState.FAILED
    assert "queue" in export.error

    settings.REDIS_URL = working_redis
    assert alice_client.post(EXPORT_URL).status_code == 202
