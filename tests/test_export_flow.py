"""The whole export over HTTP: POST, the worker, GET 303, the Location, the archive from S3."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from ocl_export.models import ExportState
from repos.representation.body import stream_version
from repos.representation.items import EVERYTHING
from tests.export_support import (
    EXPORT_URL,
    ciel_v1,
    content_of,
    export_json_of,
    fetch_archive,
    parsed,
    the_export,
    work,
)

pytestmark = pytest.mark.django_db(transaction=True)

READ_EVERYTHING = "/orgs/CIEL/sources/CIEL/v1/?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"


def test_post_then_worker_then_get_gives_the_archive_from_s3(
    org, alice_client, anon_client, redis_conn, s3_bucket
) -> None:
    client, bucket = s3_bucket
    version = ciel_v1(org)

    response = alice_client.post(EXPORT_URL)
    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    job = response.json()
    assert job["state"] == "pending"
    assert job["format"] == "tgz"
    assert job["percent"] == 0
    assert job["url"].startswith("http://testserver/exports/jobs/")

    assert anon_client.get(EXPORT_URL).status_code == 204
    work()

    response = anon_client.get(EXPORT_URL)
    assert response.status_code == 303
    assert response["Location"].startswith("http://testserver/exports/download/")
    assert response["Location"].endswith("/CIEL_v1.20161004123113.tgz")
    assert response["Last-Updated"] == "2016-10-04T12:31:13Z"
    assert response["Last-Updated-Timezone"] == "UTC"
    assert response["Cache-Control"] == "no-cache, no-store, must-revalidate"

    download = fetch_archive(response["Location"])
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/gzip"
    assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    archive = download.content
    export = the_export(version)
    assert export.state == ExportState.COMPLETED
    assert (export.size, export.sha256) == (len(archive), hashlib.sha256(archive).hexdigest())
    assert export.items_done == export.items_total == 5

    body = export_json_of(archive)
    assert body == b"".join(stream_version(version, EVERYTHING))
    read_api = anon_client.get(READ_EVERYTHING)
    assert read_api.status_code == 200
    assert orjson.loads(body) == orjson.loads(content_of(read_api))
    keys = list(orjson.loads(body))
    assert keys[0] == "type" and keys[-2:] == ["concepts", "mappings"]

    stored = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"].rsplit("/", 1)[-1] for item in stored] == ["CIEL_v1.20161004123113.tgz"]


def test_zip_format_gives_a_zip_holding_only_export_json(org, alice_client, anon_client, redis_conn, s3_bucket) -> None:
    version = ciel_v1(org)
    assert alice_client.post(f"{EXPORT_URL}?format=zip").status_code == 202
    work()
    assert anon_client.get(EXPORT_URL).status_code == 204  # the default format has no export
    response = anon_client.get(f"{EXPORT_URL}?format=zip")
    assert response.status_code == 303
    assert response["Location"].endswith("/CIEL_v1.20161004123113.zip")
    download = fetch_archive(response["Location"])
    assert download.headers["Content-Type"] == "application/zip"
    assert parsed(download.content, "zip") == orjson.loads(b"".join(stream_version(version, EVERYTHING)))


def test_exporting_a_version_twice_gives_the_same_bytes(org, alice_client, redis_conn, s3_bucket) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    first = the_export(version)
    assert alice_client.delete(EXPORT_URL).status_code == 200

    assert alice_client.post(EXPORT_URL).status_code == 202
    work()
    second = the_export(version)
    assert second.pk != first.pk
    assert (second.sha256, second.size, second.key) == (first.sha256, first.size, first.key)
    download = fetch_archive(alice_client.get(EXPORT_URL)["Location"])
    assert hashlib.sha256(download.content).hexdigest() == first.sha256


def test_a_completed_export_is_answered_303_by_post_too(org, alice_client, redis_conn, s3_bucket) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    response = alice_client.post(EXPORT_URL)
    assert response.status_code == 303
    assert "/exports/download/" in response["Location"]


def test_latest_and_the_path_without_slash_name_the_same_export(
    org, alice_client, anon_client, redis_conn, s3_bucket
) -> None:
    ciel_v1(org)
    assert alice_client.post("/orgs/CIEL/sources/CIEL/latest/export").status_code == 202
    work()
    for url in (EXPORT_URL, EXPORT_URL.rstrip("/"), "/orgs/CIEL/sources/CIEL/latest/export/"):
        response = anon_client.get(url)
        assert response.status_code == 303, url
        assert response["Location"].endswith("/CIEL_v1.20161004123113.tgz")


def test_filesystem_storage_streams_the_archive_itself(org, alice_client, anon_client, redis_conn, fs_storage) -> None:
    version = ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    response = anon_client.get(anon_client.get(EXPORT_URL)["Location"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"] == 'attachment; filename="CIEL_v1.20161004123113.tgz"'
    assert response["Date"]
    archive = content_of(response)
    assert int(response["Content-Length"]) == len(archive) == the_export(version).size
    assert export_json_of(archive) == b"".join(stream_version(version, EVERYTHING))
