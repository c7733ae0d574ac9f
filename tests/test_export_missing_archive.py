"""An archive deleted from storage behind the service's back: the download link notices, answers
as if there were no export (a JSON 404, never a storage error), and the export can be rebuilt."""

from __future__ import annotations

import pytest

from ocl_export.models import ExportState
from ocl_export.storage import get_storage
from tests.export_support import EXPORT_URL, ciel_v1, the_export, work

pytestmark = pytest.mark.django_db(transaction=True)


def completed_export(org, alice_client):
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    export = the_export(version)
    assert export.state == ExportState.COMPLETED
    return export


def assert_answers_as_if_there_were_no_export(export, alice_client, anon_client) -> None:
    location = anon_client.get(EXPORT_URL)["Location"]  # issued before anyone noticed
    response = anon_client.get(location)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "request one" in response.json()["detail"]
    export.refresh_from_db()
    assert export.state == ExportState.FAILED and "missing from storage" in export.error
    status = anon_client.get(EXPORT_URL)
    assert (status.status_code, status["X-Export-State"]) == (204, "failed")
    assert alice_client.post(EXPORT_URL).status_code == 202
    work()
    assert the_export(export.version).state == ExportState.COMPLETED
    assert anon_client.get(anon_client.get(EXPORT_URL)["Location"]).status_code in (200, 302)


def test_an_s3_object_deleted_behind_the_service_fails_the_export(
    org, alice_client, anon_client, redis_conn, s3_bucket, settings
) -> None:
    client, bucket = s3_bucket
    export = completed_export(org, alice_client)
    client.delete_object(Bucket=bucket, Key=f"{settings.AWS_LOCATION}/{export.key}")
    assert_answers_as_if_there_were_no_export(export, alice_client, anon_client)


def test_a_file_deleted_behind_the_service_fails_the_export(
    org, alice_client, anon_client, redis_conn, fs_storage
) -> None:
    export = completed_export(org, alice_client)
    get_storage().path(export.key).unlink()
    assert_answers_as_if_there_were_no_export(export, alice_client, anon_client)


def test_an_unreachable_store_is_503_and_leaves_the_export_alone(
    org, alice_client, anon_client, redis_conn, s3_bucket, settings
) -> None:
    export = completed_export(org, alice_client)
    location = anon_client.get(EXPORT_URL)["Location"]
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:1"
    response = anon_client.get(location)
    assert response.status_code == 503 and response["Retry-After"]
    export.refresh_from_db()
    assert export.state == ExportState.COMPLETED
