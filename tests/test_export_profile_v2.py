"""OCL_COMPAT=v2: the export resource answers as an OCL v2 server does (clients.md, last table).

Zip by default, 302 to a URL that answers 200 itself, 208 while produced, DELETE 204/404, and
HEAD exportable by the repository's administrators. The v1 answers stay in the other export tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from ocl_export.models import Export, ExportState
from repos.models import RepositoryVersion
from tests.export_support import EXPORT_URL, T0, ciel_v1, content_of, export_json_of, parsed, the_export, work
from tests.factories import add_concept

pytestmark = pytest.mark.django_db(transaction=True)

HEAD_EXPORT_URL = "/orgs/CIEL/sources/CIEL/HEAD/export/"
HEAD_READ_URL = "/orgs/CIEL/sources/CIEL/HEAD/?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def v2(ocl_v2) -> None:
    """Every test here runs in the v2 profile."""


@pytest.fixture
def exported(org, alice_client, redis_conn, s3_bucket) -> RepositoryVersion:
    version = ciel_v1(org)
    assert alice_client.post(EXPORT_URL).status_code == 202
    work()
    return version


def settings_in_a_new_process(**env: str) -> subprocess.CompletedProcess:
    """Import the real settings module as the service's start-up does, with ``env`` set."""
    environment = {
        key: value for key, value in os.environ.items() if key not in ("OCL_COMPAT", "EXPORT_DEFAULT_FORMAT")
    }
    code = "import ocl_export.settings as s; print(s.OCL_COMPAT, s.EXPORT_DEFAULT_FORMAT)"
    return subprocess.run(
        [sys.executable, "-c", code], env={**environment, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_ocl_compat_is_checked_at_start_up_and_v2_defaults_to_zip() -> None:
    assert settings_in_a_new_process().stdout.split() == ["v1", "tgz"]
    assert settings_in_a_new_process(OCL_COMPAT="v2").stdout.split() == ["v2", "zip"]
    assert settings_in_a_new_process(OCL_COMPAT="v2", EXPORT_DEFAULT_FORMAT="tgz").stdout.split() == ["v2", "tgz"]
    refused = settings_in_a_new_process(OCL_COMPAT="v3")
    assert refused.returncode != 0
    assert "OCL_COMPAT must be one of v1, v2" in refused.stderr


def test_the_default_archive_is_a_zip_and_format_tgz_still_works(org, alice_client, redis_conn, fs_storage) -> None:
    version = ciel_v1(org)
    assert alice_client.post(EXPORT_URL).json()["format"] == "zip"
    assert alice_client.post(f"{EXPORT_URL}?format=tgz").json()["format"] == "tgz"
    work()
    assert {export.format for export in Export.objects.filter(version=version)} == {"zip", "tgz"}
    zipped = alice_client.get(alice_client.get(EXPORT_URL)["Location"])
    assert zipped["Content-Type"] == "application/zip"
    assert parsed(content_of(zipped), "zip")["concepts"]
    tgz = alice_client.get(alice_client.get(f"{EXPORT_URL}?format=tgz")["Location"])
    assert tgz["Content-Type"] == "application/gzip"
    assert parsed(content_of(tgz))["concepts"]


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_completed_export_is_a_302_to_a_presigned_url_that_answers_200(exported, anon_client, method) -> None:
    response = getattr(anon_client, method)(EXPORT_URL)
    assert response.status_code == 302
    location = response["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
    assert response["Last-Updated"] == "2016-10-04T12:31:13Z"
    archive = requests.get(location, allow_redirects=False, timeout=30)
    assert archive.status_code == 200
    assert archive.headers["Content-Type"] == "application/zip"
    assert archive.headers["Content-Disposition"] == 'attachment; filename="CIEL_v1.20161004123113.zip"'
    assert parsed(archive.content, "zip")["id"] == "v1"


def test_the_presigned_url_lives_export_presign_ttl_seconds(exported, anon_client, settings) -> None:
    settings.EXPORT_PRESIGN_TTL = 17
    assert "X-Amz-Expires=17" in anon_client.get(EXPORT_URL)["Location"]


def test_with_filesystem_storage_the_302_goes_to_the_service_which_streams_the_file(
    org, alice_client, anon_client, redis_conn, fs_storage
) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    response = anon_client.get(EXPORT_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("http://testserver/exports/download/")
    archive = anon_client.get(response["Location"])
    assert archive.status_code == 200
    assert archive["Content-Type"] == "application/zip"
    assert export_json_of(content_of(archive), "zip")


def test_an_archive_gone_from_s3_answers_204_not_a_redirect_to_a_404_and_post_builds_it_again(
    exported, alice_client, anon_client, s3_bucket
) -> None:
    client, bucket = s3_bucket
    for item in client.list_objects_v2(Bucket=bucket)["Contents"]:
        client.delete_object(Bucket=bucket, Key=item["Key"])
    response = anon_client.get(EXPORT_URL)
    assert (response.status_code, response["X-Export-State"]) == (204, "failed")
    assert alice_client.post(EXPORT_URL).status_code == 202
    work()
    assert requests.get(anon_client.get(EXPORT_URL)["Location"], timeout=30).status_code == 200


def test_while_produced_get_head_and_post_answer_208_with_the_job(org, alice_client, anon_client, redis_conn) -> None:
    version = ciel_v1(org)
    assert anon_client.get(EXPORT_URL).status_code == 204
    assert alice_client.post(EXPORT_URL).status_code == 202
    for state in ("pending", "processing"):
        if state == "processing":
            export = the_export(version, "zip")
            assert export.transition(ExportState.PROCESSING, started_on=timezone.now(), heartbeat_on=timezone.now())
        for response in (anon_client.get(EXPORT_URL), alice_client.post(EXPORT_URL)):
            assert response.status_code == 208
            body = response.json()
            assert (body["state"], body["format"]) == (state, "zip")
            assert body["url"].startswith("http://testserver/exports/jobs/")
            assert 'rel="status"' in response["Link"]
        head = anon_client.head(EXPORT_URL)
        assert (head.status_code, head.content) == (208, b"")
    assert Export.objects.count() == 1


def test_nothing_to_export_yet_is_204_and_post_is_202(org, alice_client, anon_client, redis_conn) -> None:
    ciel_v1(org)
    assert anon_client.get(EXPORT_URL).status_code == 204
    assert anon_client.head(EXPORT_URL).status_code == 204
    assert alice_client.post(EXPORT_URL).status_code == 202


def test_post_of_a_completed_export_is_303_to_the_archive(exported, alice_client) -> None:
    response = alice_client.post(EXPORT_URL)
    assert response.status_code == 303
    assert requests.get(response["Location"], timeout=30).status_code == 200


def test_delete_answers_204_when_it_deleted_and_404_json_when_there_was_nothing(exported, alice_client) -> None:
    response = alice_client.delete(EXPORT_URL)
    assert (response.status_code, response.content) == (204, b"")
    assert not Export.objects.exists()
    response = alice_client.delete(EXPORT_URL)
    assert response.status_code == 404
    assert response.json()["detail"]


def test_delete_of_an_export_under_way_cancels_it_with_202(org, alice_client, redis_conn) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    response = alice_client.delete(EXPORT_URL)
    assert (response.status_code, response.json()["state"]) == (202, "cancelled")


# --- HEAD ------------------------------------------------------------------------------------


def test_an_admin_exports_head_stamped_with_heads_last_updated(org, alice_client, redis_conn, fs_storage) -> None:
    ciel_v1(org)
    assert alice_client.get(HEAD_EXPORT_URL).status_code == 204
    response = alice_client.post(HEAD_EXPORT_URL)
    assert response.status_code == 202
    work()
    response = alice_client.get(HEAD_EXPORT_URL)
    assert response.status_code == 302
    assert response["Location"].endswith("/CIEL_HEAD.20161004123113.zip")
    archive = content_of(alice_client.get(response["Location"]))
    assert export_json_of(archive, "zip") == b"".join(alice_client.get(HEAD_READ_URL).streaming_content)


def test_once_head_changes_its_export_is_out_of_date_and_post_builds_a_new_one(
    org, alice_client, redis_conn, fs_storage
) -> None:
    version = ciel_v1(org)
    alice_client.post(HEAD_EXPORT_URL)
    work()
    old = the_export(version.repository.head(), "zip")
    old_file = fs_storage / old.key
    assert old_file.is_file()

    add_concept(version.repository, "1068", display_name="Maybe", updated_on=T0 + timedelta(days=1))
    response = alice_client.get(HEAD_EXPORT_URL)
    assert (response.status_code, response["X-Export-State"]) == (204, "none")
    assert alice_client.post(HEAD_EXPORT_URL).status_code == 202
    assert not old_file.exists()
    work()
    response = alice_client.get(HEAD_EXPORT_URL)
    assert response["Location"].endswith("/CIEL_HEAD.20161005123113.zip")
    concepts = parsed(content_of(alice_client.get(response["Location"])), "zip")["concepts"]
    assert "1068" in {concept["id"] for concept in concepts}
    # The released version's export is another row and does not move.
    assert alice_client.get(EXPORT_URL).status_code == 204


def test_head_losing_an_item_is_a_change_too_and_the_new_archive_keeps_its_name(
    org, alice_client, redis_conn, fs_storage
) -> None:
    version = ciel_v1(org)
    alice_client.post(HEAD_EXPORT_URL)
    work()
    name = alice_client.get(HEAD_EXPORT_URL)["Location"].rsplit("/", 1)[1]
    head = version.repository.head()
    head.concepts.remove(head.concepts.get(mnemonic="1067"))  # the oldest: lastUpdated stays
    assert alice_client.get(HEAD_EXPORT_URL).status_code == 204
    assert alice_client.post(HEAD_EXPORT_URL).status_code == 202
    work()
    location = alice_client.get(HEAD_EXPORT_URL)["Location"]
    assert location.rsplit("/", 1)[1] == name  # same stamp, same key: the old row's cleanup spared it
    concepts = parsed(content_of(alice_client.get(location)), "zip")["concepts"]
    assert {concept["id"] for concept in concepts} == {"1065", "1066"}


def test_an_admin_deletes_the_head_export(org, alice_client, redis_conn, fs_storage) -> None:
    ciel_v1(org)
    alice_client.post(HEAD_EXPORT_URL)
    work()
    assert alice_client.delete(HEAD_EXPORT_URL).status_code == 204
    assert alice_client.delete(HEAD_EXPORT_URL).status_code == 404


@pytest.mark.parametrize("actor", ["anon_client", "bob_client", "charlie_client"])
@pytest.mark.parametrize("method", ["get", "head", "post", "delete"])
def test_head_is_405_to_everyone_but_the_repositorys_admins(org, request, actor, method) -> None:
    ciel_v1(org)
    client = request.getfixturevalue(actor)
    assert getattr(client, method)(HEAD_EXPORT_URL).status_code == 405
