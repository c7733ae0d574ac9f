"""The admin console (/admin/) for staff: its pages, its actions through the API's own functions,
and sessions beside the API's tokens. The console in a real browser on the live stack:
tests/live/test_console_browser.py."""

from __future__ import annotations

import pytest
from django.test import Client
from rq.registry import ScheduledJobRegistry

from jobqueue.queue import work_queue
from mirror.models import Subscription
from ocl_export.models import Export, ExportState
from tests.export_support import EXPORT_URL, ciel_v1, queued_job_ids, stored_keys, the_export, work

pytestmark = pytest.mark.django_db(transaction=True)

EXPORTS = "/admin/ocl_export/export/"
SUBSCRIPTIONS = "/admin/mirror/subscription/"


@pytest.fixture
def exported(org, alice_client, redis_conn, s3_bucket) -> Export:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    assert len(stored_keys(s3_bucket)) == 1
    return the_export(version)


@pytest.fixture
def console(client: Client, staff) -> Client:
    client.force_login(staff)
    return client


def act(console: Client, page: str, action: str, *objects: object) -> list[str]:
    """Run an admin action on the objects; the messages the next page shows."""
    response = console.post(page, {"action": action, "_selected_action": [obj.pk for obj in objects]}, follow=True)
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def test_staff_log_in_with_a_password_and_see_every_part(client, staff, redis_conn) -> None:
    login = client.post("/admin/login/", {"username": "staff", "password": "pw", "next": "/admin/"}, follow=True)
    assert login.status_code == 200 and login.request["PATH_INFO"] == "/admin/"
    page = login.content.decode()
    for url in (EXPORTS, SUBSCRIPTIONS, "/admin/repos/repository/", "/admin/repos/repositoryversion/",
                "/admin/authtoken/tokenproxy/", "/admin/django_rq/dashboard/"):  # fmt: skip
        assert f'href="{url}"' in page, url
        assert client.get(url).status_code == 200, url


def test_the_consoles_static_files_are_served_without_collectstatic(client) -> None:
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/css")


def test_people_who_administer_nothing_cannot_log_in(client, org, bob, charlie) -> None:
    ciel_v1(org)
    for user in ("bob", "charlie"):  # a plain member of CIEL, an outsider
        login = client.post("/admin/login/", {"username": user, "password": "pw", "next": EXPORTS})
        assert login.status_code == 200 and b"administrator of a repository" in login.content
        client.force_login(bob if user == "bob" else charlie)
        response = client.get(EXPORTS)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_repository_admin_sees_and_deletes_only_its_repositories_exports(client, alice, exported, s3_bucket) -> None:
    from tests.factories import make_org, make_source, make_version

    elsewhere = Export.objects.create(version=make_version(make_source(make_org("Other"), "X"), "v1"), format="zip")
    login = client.post("/admin/login/", {"username": "alice", "password": "pw", "next": "/admin/"}, follow=True)
    assert login.request["PATH_INFO"] == "/admin/"
    page = login.content.decode()
    assert f'href="{EXPORTS}"' in page and f'href="{SUBSCRIPTIONS}"' not in page
    listed = client.get(EXPORTS).content.decode()
    assert "/orgs/CIEL/sources/CIEL/v1/" in listed and "/orgs/Other/sources/X/v1/" not in listed
    assert client.get(f"{EXPORTS}{elsewhere.pk}/change/").status_code == 302  # not hers: not found
    for staff_only in (SUBSCRIPTIONS, "/admin/authtoken/tokenproxy/", "/admin/auth/user/"):
        assert client.get(staff_only).status_code == 403, staff_only
    assert client.get("/admin/django_rq/dashboard/").status_code == 302  # django-rq: staff only
    messages = act(client, EXPORTS, "delete_exports", exported, elsewhere)  # the other one is not hers
    assert [message for message in messages if message.startswith("Deleted")] == [
        "Deleted, archive removed from storage: /orgs/CIEL/sources/CIEL/v1/ tgz (completed)"
    ]
    assert list(Export.objects.all()) == [elsewhere] and stored_keys(s3_bucket) == []


def test_the_exports_page_shows_state_size_items_and_duration(console, exported) -> None:
    page = console.get(EXPORTS).content.decode()
    assert "/orgs/CIEL/sources/CIEL/v1/" in page and "completed" in page.lower()
    assert f"{exported.items_total:,}" in page
    assert f"{(exported.finished_on - exported.started_on).total_seconds():.1f} s" in page
    assert console.get(f"{EXPORTS}?state__exact=failed").content.decode().count("/orgs/CIEL/sources/CIEL/v1/") == 0


def test_deleting_in_the_console_removes_the_row_and_the_archive(console, exported, s3_bucket) -> None:
    messages = act(console, EXPORTS, "delete_exports", exported)
    assert messages == ["Deleted, archive removed from storage: /orgs/CIEL/sources/CIEL/v1/ tgz (completed)"]
    assert not Export.objects.exists()
    assert stored_keys(s3_bucket) == []


def test_an_export_being_produced_is_not_deleted(console, org, alice_client, redis_conn) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    export = the_export(version)
    messages = act(console, EXPORTS, "delete_exports", export)
    assert messages == ["Not done: it is being produced: /orgs/CIEL/sources/CIEL/v1/ tgz (pending)"]
    assert the_export(version).state == ExportState.PENDING


def test_cancelling_in_the_console_stops_an_export_under_way_as_a_delete_would(
    console, org, alice_client, redis_conn
) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    export = the_export(version)
    assert act(console, EXPORTS, "cancel_exports", export) == [
        f"Cancelled: {export}".replace("(pending)", "(cancelled)")
    ]
    assert the_export(version).state == ExportState.CANCELLED
    assert queued_job_ids() == []
    messages = act(console, EXPORTS, "cancel_exports", the_export(version))
    assert messages == [f"Not under way (cancelled): {the_export(version)}"]


def test_rebuilding_queues_a_new_job_as_a_post_would(console, exported, s3_bucket) -> None:
    old_job = exported.job_id
    assert act(console, EXPORTS, "rebuild_exports", exported)[0].startswith("Queued: ")
    rebuilt = the_export(exported.version)
    assert rebuilt.state == ExportState.PENDING and rebuilt.job_id != old_job
    assert queued_job_ids() == [rebuilt.job_id]
    work()
    assert the_export(exported.version).state == ExportState.COMPLETED
    assert len(stored_keys(s3_bucket)) == 1


def test_sync_now_puts_a_run_of_the_subscription_on_the_queue(console, redis_conn) -> None:
    subscription = Subscription.objects.create(url="https://ocl.example.org/orgs/CIEL/sources/CIEL/")
    messages = act(console, SUBSCRIPTIONS, "sync_now", subscription)
    assert messages == [f"Run queued: {subscription}"]
    scheduled = ScheduledJobRegistry(queue=work_queue()).get_job_ids()
    assert len(scheduled) == 1 and scheduled[0].startswith(f"mirror-sync-{subscription.pk}-")
    act(console, SUBSCRIPTIONS, "sync_now", subscription)  # again: still one run waiting
    assert len(ScheduledJobRegistry(queue=work_queue()).get_job_ids()) == 1


def test_content_is_read_only_in_the_console(console, exported) -> None:
    repository = exported.version.repository
    page = console.get(f"/admin/repos/repository/{repository.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert console.get("/admin/repos/repository/add/").status_code == 403
    assert console.post(f"/admin/ocl_export/export/{exported.pk}/delete/").status_code == 403


def test_a_session_reads_the_api_as_its_user(client, staff, org, redis_conn) -> None:
    ciel_v1(org, public_access="None")
    assert client.get("/orgs/CIEL/sources/CIEL/").status_code == 404
    client.force_login(staff)
    assert client.get("/orgs/CIEL/sources/CIEL/").status_code == 200


def test_a_session_write_needs_the_csrf_token_and_a_token_write_does_not(staff, org, redis_conn) -> None:
    ciel_v1(org)
    session = Client(enforce_csrf_checks=True)
    session.force_login(staff)
    refused = session.post(EXPORT_URL)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    token = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION="Token staff-token".ljust(46, "0")[:46])
    assert token.post(EXPORT_URL).status_code == 202


def test_no_answer_is_kept_for_a_request_that_carries_a_cookie(rf) -> None:
    from read_cache.middleware import cache_key

    assert cache_key(rf.get("/orgs/CIEL/sources/CIEL/")) is not None  # the factory's empty Cookie
    assert cache_key(rf.get("/orgs/CIEL/sources/CIEL/", HTTP_COOKIE="sessionid=abc")) is None


def test_an_api_request_without_a_session_skips_the_consoles_middleware(client, staff, org, redis_conn) -> None:
    ciel_v1(org)
    plain = client.get("/orgs/CIEL/sources/CIEL/")
    assert plain.status_code == 200
    assert "X-Frame-Options" not in plain and "Cookie" not in plain.get("Vary", "") and not plain.cookies
    client.force_login(staff)
    logged_in = client.get("/orgs/CIEL/sources/CIEL/")
    assert logged_in.status_code == 200
    assert logged_in["X-Frame-Options"] == "DENY" and "Cookie" in logged_in["Vary"]


def test_the_console_runs_its_middleware_for_its_own_pages_without_a_cookie(client) -> None:
    login = client.get("/admin/login/")
    assert login.status_code == 200 and login["X-Frame-Options"] == "DENY"
    assert "csrftoken" in login.cookies  # the login form's CSRF token


def test_the_console_without_its_slash_redirects_to_it(client) -> None:
    answer = client.get("/admin")
    assert answer.status_code == 302 and answer["Location"] == "/admin/"
