"""The delta resource over HTTP: ``.../:version/export/delta/?from=:older``, its job, its archive.

A delta runs through the export's machinery (row, RQ job, one-use Location, both profiles); what
it holds is checked against ``repos.deltas`` in tests/test_deltas.py. Here: the answers, and a
subscriber's round trip through HTTP (A's archive + the delta, applied, exports with B's sha256).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ocl_export.models import Export, ExportState
from repos.checksum_store import version_checksums
from repos.importers import import_file
from repos.importers.delta import apply_delta
from repos.models import Repository, RepositoryVersion
from tests.export_support import T0, ciel_source, content_of, fetch_archive, parsed, the_export, work
from tests.factories import add_concept, make_source, make_version

pytestmark = pytest.mark.django_db(transaction=True)

DELTA_URL = "/orgs/CIEL/sources/CIEL/v2/export/delta/?from=v1"


def two_versions(org) -> tuple[RepositoryVersion, RepositoryVersion]:
    """CIEL v1, and v2: concept 1066 changed, 1068 added, mapping M2 gone."""
    source = ciel_source(org)
    older = make_version(source, "v1", created_on=T0)
    add_concept(source, "1066", display_name="No!", updated_on=T0 + timedelta(days=1))
    add_concept(source, "1068", display_name="Maybe", updated_on=T0 + timedelta(days=2))
    head = source.head()
    head.mappings.remove(head.mappings.get(mnemonic="M2"))
    return older, make_version(source, "v2", created_on=T0 + timedelta(days=3))


def made(client, url: str = DELTA_URL) -> bytes:
    """POST until the delta exists (its version's export first), running the jobs; its archive."""
    for _ in range(3):
        response = client.post(url)
        if response.status_code == 303:
            return content_of(fetch_archive(response["Location"]))
        assert response.status_code in (202, 409), response.content
        work()
    raise AssertionError("the delta was never made")


def test_a_delta_waits_for_its_versions_export_then_is_made_and_downloaded_once(
    org, alice_client, anon_client, redis_conn, s3_bucket
) -> None:
    older, newer = two_versions(org)
    assert anon_client.get(DELTA_URL)["X-Export-State"] == "none"

    first = alice_client.post(DELTA_URL)
    assert first.status_code == 409
    assert "not ready yet" in first.json()["detail"]
    assert the_export(newer).state == ExportState.PENDING  # requested by that POST
    work()

    queued = alice_client.post(DELTA_URL)
    assert queued.status_code == 202
    job = queued.json()
    assert job["links"]["export"] == "http://testserver/orgs/CIEL/sources/CIEL/v2/export/delta/?from=v1&format=tgz"
    assert alice_client.post(DELTA_URL).status_code == 409  # one job per pair and format
    work()

    response = anon_client.get(DELTA_URL)
    assert response.status_code == 303
    assert response["Location"].endswith("/CIEL_v2.20161006123113.delta-v1.tgz")
    archive = fetch_archive(response["Location"]).content
    assert anon_client.get(response["Location"]).status_code == 410
    delta = parsed(archive)
    full = the_export(newer)
    assert delta["delta"]["to"]["export"]["sha256"] == full.sha256
    assert delta["delta"]["to"]["export"]["size"] == full.size
    assert delta["delta"]["to"]["checksums"] == version_checksums(newer)
    assert delta["delta"]["to"]["checksums"]["standard"]
    assert [item["id"] for item in delta["concepts"]] == ["1066", "1068"]
    assert delta["mappings"] == []
    assert delta["removed"] == [{"type": "Mapping", "id": "M2", "url": "/orgs/CIEL/sources/CIEL/mappings/M2/"}]
    row = Export.objects.get(version=newer, base=older)
    assert (row.state, row.items_total, row.size) == (ExportState.COMPLETED, 3, len(archive))
    # The export resource of v2 still answers its own archive, not the delta.
    assert alice_client.get("/orgs/CIEL/sources/CIEL/v2/export/")["Location"].endswith("/CIEL_v2.20161006123113.tgz")


def test_a_delta_is_reproducible(org, alice_client, redis_conn, fs_storage) -> None:
    two_versions(org)
    archive = made(alice_client)
    Export.objects.filter(base__isnull=False).delete()
    assert made(alice_client) == archive


def test_a_subscriber_holding_the_older_version_applies_the_delta_and_gets_the_newer_exactly(
    org, alice_client, redis_conn, fs_storage, tmp_path: Path
) -> None:
    _older, newer = two_versions(org)
    delta = tmp_path / "CIEL_v2.delta-v1.zip"
    delta.write_bytes(made(alice_client, DELTA_URL + "&format=zip"))
    older_export = tmp_path / "CIEL_v1.zip"
    older_export.write_bytes(made(alice_client, "/orgs/CIEL/sources/CIEL/v1/export/?format=zip"))
    expected = the_export(newer, "zip").sha256

    Repository.objects.all().delete()
    import_file(older_export)
    assert apply_delta(delta).status == "created"
    made(alice_client, "/orgs/CIEL/sources/CIEL/v2/export/?format=zip")
    assert the_export(RepositoryVersion.objects.get(version="v2"), "zip").sha256 == expected


def test_in_the_v2_profile_a_delta_answers_as_an_ocl_v2_export(
    org, alice_client, anon_client, redis_conn, fs_storage, ocl_v2
) -> None:
    two_versions(org)
    waiting = alice_client.post(DELTA_URL)
    assert waiting.status_code == 208  # the version's export, being made first
    assert waiting.json()["links"]["export"].endswith("/v2/export/?format=zip")
    work()
    assert alice_client.post(DELTA_URL).status_code == 202
    assert alice_client.post(DELTA_URL).status_code == 208
    work()
    response = anon_client.get(DELTA_URL)
    assert response.status_code == 302
    assert content_of(fetch_archive(response["Location"]))[:2] == b"PK"


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/", 400, "?from="),
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/?from=v2", 404, "two different versions"),
        ("/orgs/CIEL/sources/CIEL/v1/export/delta/?from=v2", 404, "not older"),
        ("/orgs/CIEL/sources/CIEL/HEAD/export/delta/?from=v1", 404, "HEAD"),
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/?from=HEAD", 404, "HEAD"),
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/?from=/orgs/CIEL/sources/Other/v1/", 404, "not one of them"),
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/?from=/orgs/CIEL/sources/CIEL/v1/", 204, ""),
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/?from=v0", 404, "v0"),
        ("/orgs/CIEL/sources/CIEL/v2/export/delta/?from=v1&format=rar", 400, "format"),
    ],
)
def test_a_pair_that_no_delta_joins_is_a_clear_json_error(org, anon_client, url, status, words) -> None:
    two_versions(org)
    make_version(make_source(org, "Other"), "v1")
    response = anon_client.get(url)
    assert response.status_code == status
    if status >= 400:
        assert response["Content-Type"] == "application/json"
        assert words in response.json()["detail"]


def test_posting_a_delta_needs_a_token(org, anon_client) -> None:
    two_versions(org)
    assert anon_client.post(DELTA_URL).status_code == 401


def test_a_released_versions_export_brings_its_delta_from_the_previous_release(
    org, alice_client, redis_conn, fs_storage, settings
) -> None:
    settings.EXPORT_DELTA_ON_RELEASE = True
    older, newer = two_versions(org)
    draft = make_version(older.repository, "v3-draft", released=False, created_on=T0 + timedelta(days=9))
    for version in ("v1", "v2", "v3-draft"):
        assert alice_client.post(f"/orgs/CIEL/sources/CIEL/{version}/export/").status_code == 202
    work()
    deltas = Export.objects.filter(base__isnull=False)
    assert [(d.base.version, d.version.version, d.state) for d in deltas] == [("v1", "v2", ExportState.COMPLETED)]
    assert alice_client.get(DELTA_URL).status_code == 303
    assert not Export.objects.filter(version=draft, base__isnull=False).exists()


def test_a_delta_whose_versions_export_went_away_before_its_job_ran_fails_for_good(
    org, alice_client, redis_conn, fs_storage
) -> None:
    _older, newer = two_versions(org)
    assert alice_client.post("/orgs/CIEL/sources/CIEL/v2/export/").status_code == 202
    work()
    assert alice_client.post(DELTA_URL).status_code == 202
    the_export(newer).delete()
    work()
    delta = Export.objects.get(base__isnull=False)
    assert delta.state == ExportState.FAILED
    assert "request it first" in delta.error
    assert alice_client.get(DELTA_URL)["X-Export-State"] == "failed"
