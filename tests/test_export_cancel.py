"""Cancelling an export under way: DELETE of the export resource, or of its job status link, by an
administrator of the repository (export-api.md, DELETE). The job never runs (or runs no further),
nothing is left in storage, the row says ``cancelled``, and the export can be requested again."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rq.job import Job, JobStatus

from ocl_export.models import Export, ExportState
from tests.export_support import EXPORT_URL, ciel_v1, queued_job_ids, stored_keys, the_export, work

pytestmark = pytest.mark.django_db(transaction=True)


def unfinished_uploads(s3_bucket: tuple) -> list[str]:
    client, bucket = s3_bucket
    return [upload["Key"] for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@pytest.fixture
def pending(org, alice_client, redis_conn, s3_bucket) -> Export:
    version = ciel_v1(org)
    assert alice_client.post(EXPORT_URL).status_code == 202
    return the_export(version)


def in_flight(export: Export, s3_bucket: tuple) -> str:
    """The export as a work horse leaves it mid-upload: processing, its key noted, one part of a
    multipart upload sent to the S3 server."""
    client, bucket = s3_bucket
    key = f"orgs/CIEL/sources/CIEL/{export.pk}.tgz"
    now = timezone.now()
    assert export.transition(ExportState.PROCESSING, started_on=now, heartbeat_on=now, progress_on=now)
    Export.objects.filter(pk=export.pk).update(key=key)
    upload = client.create_multipart_upload(Bucket=bucket, Key=f"exports/{key}")
    client.upload_part(Bucket=bucket, Key=f"exports/{key}", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024)
    return key


def test_delete_of_a_pending_export_cancels_it_with_202_and_the_job(pending, alice_client, redis_conn) -> None:
    response = alice_client.delete(EXPORT_URL)
    assert response.status_code == 202
    job = response.json()
    assert (job["id"], job["state"]) == (pending.pk, "cancelled")
    assert job["error"] == "Cancelled by alice."
    assert response["Link"] == f'<{job["url"]}>; rel="status"'
    assert queued_job_ids() == []
    assert Job.fetch(pending.job_id, connection=redis_conn).get_status() == JobStatus.CANCELED
    assert alice_client.get(job["url"]).json()["state"] == "cancelled"


def test_a_cancelled_export_answers_as_none_and_runs_no_more(pending, alice_client, anon_client, s3_bucket) -> None:
    alice_client.delete(EXPORT_URL)
    work()
    assert the_export(pending.version).state == ExportState.CANCELLED
    response = anon_client.get(EXPORT_URL)
    assert (response.status_code, response["X-Export-State"]) == (204, "cancelled")
    assert stored_keys(s3_bucket) == []


def test_a_cancelled_export_can_be_requested_again(pending, alice_client, anon_client) -> None:
    alice_client.delete(EXPORT_URL)
    response = alice_client.post(EXPORT_URL)
    assert response.status_code == 202
    assert response.json()["state"] == "pending" and response.json()["error"] is None
    work()
    assert the_export(pending.version).state == ExportState.COMPLETED
    assert anon_client.get(EXPORT_URL).status_code == 303


def test_cancelling_mid_upload_aborts_the_upload_and_leaves_nothing_stored(pending, alice_client, s3_bucket) -> None:
    key = in_flight(pending, s3_bucket)
    assert unfinished_uploads(s3_bucket) == [f"exports/{key}"]
    response = alice_client.delete(EXPORT_URL)
    assert (response.status_code, response.json()["state"]) == (202, "cancelled")
    assert unfinished_uploads(s3_bucket) == []
    assert stored_keys(s3_bucket) == []
    assert the_export(pending.version).key == ""  # nothing left that the reaper must see to


def test_delete_on_the_status_link_cancels_and_then_answers_409(pending, alice_client) -> None:
    url = f"/exports/jobs/{pending.pk}/"
    response = alice_client.delete(url)
    assert (response.status_code, response.json()["state"]) == (202, "cancelled")
    again = alice_client.delete(url)
    assert again.status_code == 409
    assert again["Content-Type"] == "application/json" and "cancelled" in again.json()["detail"]


def test_the_status_link_of_a_completed_export_answers_409_and_keeps_it(pending, alice_client, s3_bucket) -> None:
    work()
    assert alice_client.delete(f"/exports/jobs/{pending.pk}/").status_code == 409
    assert the_export(pending.version).state == ExportState.COMPLETED
    assert len(stored_keys(s3_bucket)) == 1


def test_only_admins_cancel(pending, anon_client, bob_client, charlie_client, staff_client) -> None:
    url = f"/exports/jobs/{pending.pk}/"
    assert anon_client.delete(EXPORT_URL).status_code == 401
    assert anon_client.delete(url).status_code == 401
    assert bob_client.delete(EXPORT_URL).status_code == 403
    assert bob_client.delete(url).status_code == 403
    assert charlie_client.delete(url).status_code == 403
    assert the_export(pending.version).state == ExportState.PENDING
    assert staff_client.delete(url).status_code == 202


def test_an_unknown_job_answers_404(alice_client, db) -> None:
    response = alice_client.delete("/exports/jobs/999999/")
    assert response.status_code == 404 and response.json()["detail"]


def test_format_selects_which_export_is_cancelled(pending, alice_client) -> None:
    assert alice_client.post(f"{EXPORT_URL}?format=zip").status_code == 202
    assert alice_client.delete(f"{EXPORT_URL}?format=zip").status_code == 202
    assert the_export(pending.version, "zip").state == ExportState.CANCELLED
    assert the_export(pending.version).state == ExportState.PENDING


def test_the_v2_profile_answers_a_cancel_with_202_and_the_job(org, ocl_v2, alice_client, redis_conn) -> None:
    ciel_v1(org)
    assert alice_client.post(EXPORT_URL).status_code == 202  # a zip, v2's default
    response = alice_client.delete(EXPORT_URL)
    assert (response.status_code, response.json()["state"], response.json()["format"]) == (202, "cancelled", "zip")
    # Once cancelled there is no export to delete: OCL v2's 404.
    assert alice_client.delete(EXPORT_URL).status_code == 404
