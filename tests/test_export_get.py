"""GET and HEAD .../:version/export/: 404, 405, 204 with the state, 303 from the database alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ocl_export.models import Export, ExportState
from tests.export_support import EXPORT_URL, ciel_source, ciel_v1, queued_job_ids, the_export, work
from tests.factories import make_source, make_version

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "url",
    [
        "/orgs/NOPE/sources/CIEL/v1/export/",
        "/orgs/CIEL/sources/NOPE/v1/export/",
        "/orgs/CIEL/sources/CIEL/v9/export/",
        "/orgs/CIEL/collections/CIEL/v1/export/",
        "/users/nobody/sources/CIEL/v1/export/",
    ],
)
def test_it_answers_404_json_for_an_unknown_owner_repo_or_version(org, anon_client, url) -> None:
    ciel_v1(org)
    response = anon_client.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_latest_without_a_released_version_is_404(org, anon_client) -> None:
    ciel_source(org)
    assert anon_client.get("/orgs/CIEL/sources/CIEL/latest/export/").status_code == 404


@pytest.mark.parametrize("method", ["get", "head", "post", "delete"])
def test_the_head_version_is_405_on_every_verb(org, alice_client, method) -> None:
    ciel_v1(org)
    response = getattr(alice_client, method)("/orgs/CIEL/sources/CIEL/HEAD/export/")
    assert response.status_code == 405
    if method != "head":
        assert response.json()["detail"]


def test_a_private_repository_is_404_to_outsiders_and_visible_to_members(
    org, charlie_client, bob_client, anon_client
) -> None:
    ciel_v1(org, public_access="None")
    assert anon_client.get(EXPORT_URL).status_code == 404
    assert charlie_client.get(EXPORT_URL).status_code == 404
    assert charlie_client.post(EXPORT_URL).status_code == 404
    response = bob_client.get(EXPORT_URL)
    assert response.status_code == 204
    assert response["X-Export-State"] == "none"


def test_it_answers_204_with_the_state_before_and_while_the_export_is_produced(
    org, alice_client, anon_client, redis_conn
) -> None:
    version = ciel_v1(org)
    response = anon_client.get(EXPORT_URL)
    assert (response.status_code, response["X-Export-State"], response.content) == (204, "none", b"")
    assert "Retry-After" not in response

    alice_client.post(EXPORT_URL)
    response = anon_client.get(EXPORT_URL)
    assert (response.status_code, response["X-Export-State"]) == (204, "pending")
    assert int(response["Retry-After"]) > 0

    export = the_export(version)
    assert export.transition(ExportState.PROCESSING, started_on=timezone.now(), heartbeat_on=timezone.now())
    response = anon_client.get(EXPORT_URL)
    assert (response.status_code, response["X-Export-State"]) == (204, "processing")
    assert 'rel="status"' in response["Link"]


def test_head_answers_like_get_without_a_body(org, alice_client, anon_client, redis_conn, fs_storage) -> None:
    ciel_v1(org)
    assert anon_client.head(EXPORT_URL).status_code == 204
    alice_client.post(EXPORT_URL)
    work()
    response = anon_client.head(EXPORT_URL)
    assert response.status_code == 303
    assert "/exports/download/" in response["Location"]
    assert response.content == b""


def test_json_request_headers_still_get_the_redirect(org, alice_client, anon_client, redis_conn, fs_storage) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL, content_type="application/json", HTTP_ACCEPT="application/json")
    work()
    response = anon_client.get(EXPORT_URL, content_type="application/json", HTTP_ACCEPT="application/json")
    assert response.status_code == 303


def test_a_bad_format_is_400_json(org, anon_client) -> None:
    ciel_v1(org)
    response = anon_client.get(f"{EXPORT_URL}?format=rar")
    assert response.status_code == 400
    assert "rar" in response.json()["detail"]


def test_a_completed_export_is_served_with_redis_down(
    org, alice_client, anon_client, redis_conn, fs_storage, settings
) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = anon_client.get(EXPORT_URL)
    assert response.status_code == 303


def test_a_processing_export_without_heartbeat_becomes_failed(org, anon_client, alice, redis_conn, settings) -> None:
    version = ciel_v1(org)
    long_ago = timezone.now() - timedelta(seconds=settings.EXPORT_HEARTBEAT_STALE + 1)
    export = Export.create_pending(version, "tgz", alice)
    export.transition(ExportState.PROCESSING, started_on=long_ago, heartbeat_on=long_ago)
    response = anon_client.get(EXPORT_URL)
    assert (response.status_code, response["X-Export-State"]) == (204, "failed")
    assert "heartbeat" in the_export(version).error


def test_a_pending_export_whose_job_redis_lost_is_queued_again(
    org, alice_client, anon_client, redis_conn, fs_storage
) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    redis_conn.flushdb()  # a Redis restarted empty
    # Just queued: the job may not have reached Redis yet, so it is not judged.
    assert anon_client.get(EXPORT_URL)["X-Export-State"] == "pending"
    assert queued_job_ids() == []
    Export.objects.filter(pk=the_export(version).pk).update(queued_on=timezone.now() - timedelta(minutes=1))
    assert anon_client.get(EXPORT_URL)["X-Export-State"] == "pending"
    assert queued_job_ids() == [the_export(version).job_id]
    work()
    assert anon_client.get(EXPORT_URL).status_code == 303


def test_exports_of_other_versions_do_not_answer_for_this_one(
    org, alice_client, anon_client, redis_conn, fs_storage
) -> None:
    source = ciel_source(org)
    make_version(source, "v1")
    make_version(source, "v1.1")
    alice_client.post("/orgs/CIEL/sources/CIEL/v1.1/export/")
    work()
    assert anon_client.get("/orgs/CIEL/sources/CIEL/v1.1/export/").status_code == 303
    assert anon_client.get(EXPORT_URL).status_code == 204


def test_a_users_repository_is_exported_under_users_and_user(
    alice, alice_client, anon_client, redis_conn, fs_storage
) -> None:
    make_version(make_source(alice, "Mine"), "v1")
    assert alice_client.post("/user/sources/Mine/v1/export/").status_code == 202
    work()
    response = anon_client.get("/users/alice/sources/Mine/v1/export")
    assert response.status_code == 303
    assert response["Location"].endswith("/Mine_v1." + response["Location"].rsplit(".", 2)[-2] + ".tgz")
