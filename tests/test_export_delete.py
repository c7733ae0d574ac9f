"""DELETE .../:version/export/, and exports going away with their version or repository."""

from __future__ import annotations

import pytest
from django.utils import timezone

from ocl_export.models import Export, ExportState, RedeemedLocation
from repos.models import RepositoryVersion
from tests.export_support import EXPORT_URL, ciel_v1, stored_keys, the_export, work

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def exported(org, alice_client, redis_conn, s3_bucket) -> RepositoryVersion:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    assert len(stored_keys(s3_bucket)) == 1
    return version


def test_anonymous_callers_get_401(exported, anon_client) -> None:
    assert anon_client.delete(EXPORT_URL).status_code == 401


def test_members_who_are_not_admins_get_403(exported, bob_client, charlie_client) -> None:
    response = bob_client.delete(EXPORT_URL)
    assert response.status_code == 403
    assert response.json()["detail"]
    assert charlie_client.delete(EXPORT_URL).status_code == 403
    assert the_export(exported).state == ExportState.COMPLETED


def test_an_admin_deletes_the_archive_and_its_record(exported, alice_client, anon_client, s3_bucket) -> None:
    response = alice_client.delete(EXPORT_URL)
    assert response.status_code == 200
    assert response.json()["detail"]
    assert not Export.objects.exists()
    assert stored_keys(s3_bucket) == []
    assert anon_client.get(EXPORT_URL).status_code == 204


def test_staff_may_delete_too(exported, staff_client) -> None:
    assert staff_client.delete(EXPORT_URL).status_code == 200


def test_without_an_export_it_answers_204(org, alice_client) -> None:
    ciel_v1(org)
    response = alice_client.delete(EXPORT_URL)
    assert (response.status_code, response.content) == (204, b"")


def test_an_issued_location_dies_with_its_export(exported, alice_client, anon_client) -> None:
    used, location = anon_client.get(EXPORT_URL)["Location"], anon_client.get(EXPORT_URL)["Location"]
    assert anon_client.get(used).status_code == 302
    alice_client.delete(EXPORT_URL)
    assert not RedeemedLocation.objects.exists()
    assert anon_client.get(location).status_code == 404


def test_an_export_under_way_is_cancelled_not_deleted(org, alice_client, redis_conn) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    the_export(version).transition(ExportState.PROCESSING, started_on=timezone.now(), heartbeat_on=timezone.now())
    assert alice_client.delete(EXPORT_URL).status_code == 202  # tests/test_export_cancel.py
    assert the_export(version).state == ExportState.CANCELLED


def test_a_failed_export_is_forgotten_with_204(org, alice, alice_client) -> None:
    version = ciel_v1(org)
    Export.create_pending(version, "tgz", alice).transition(ExportState.FAILED, error="boom")
    assert alice_client.delete(EXPORT_URL).status_code == 204
    assert not Export.objects.exists()


def test_format_selects_which_export_goes(exported, alice_client, s3_bucket) -> None:
    alice_client.post(f"{EXPORT_URL}?format=zip")
    work()
    assert len(stored_keys(s3_bucket)) == 2
    assert alice_client.delete(f"{EXPORT_URL}?format=zip").status_code == 200
    assert [key.rsplit(".", 1)[-1] for key in stored_keys(s3_bucket)] == ["tgz"]
    assert alice_client.delete(f"{EXPORT_URL}?format=zip").status_code == 204


def test_deleting_the_version_removes_its_archives(exported, s3_bucket) -> None:
    exported.delete()
    assert not Export.objects.exists()
    assert stored_keys(s3_bucket) == []


def test_deleting_the_repository_removes_its_archives(exported, s3_bucket) -> None:
    exported.repository.delete()
    assert stored_keys(s3_bucket) == []
