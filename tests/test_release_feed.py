"""The release feed: ``.../:repo/versions/feed/`` and ``/orgs/:org/feed/``, JSON and Atom, with ETags."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree

import pytest

from ocl_export.feed_atom import ATOM, NCTS
from ocl_export.models import Export
from repos.checksum_store import version_checksums
from tests.export_support import T0, ciel_source, the_export, work
from tests.factories import add_concept, make_source, make_version

pytestmark = pytest.mark.django_db(transaction=True)

FEED_URL = "/orgs/CIEL/sources/CIEL/versions/feed/"
BASE = "http://testserver/orgs/CIEL/sources/CIEL/"


@pytest.fixture
def releases(org, alice_client, redis_conn, fs_storage):
    """CIEL v1 and v2 released (v2 with its delta from v1 made), v3-draft not released."""
    source = ciel_source(org)
    v1 = make_version(source, "v1", created_on=T0)
    add_concept(source, "1068", display_name="Maybe", updated_on=T0 + timedelta(days=1))
    v2 = make_version(source, "v2", created_on=T0 + timedelta(days=2))
    make_version(source, "v3-draft", released=False, created_on=T0 + timedelta(days=3))
    for url in ("v1/export/", "v2/export/", "v2/export/delta/?from=v1"):
        assert alice_client.post(f"/orgs/CIEL/sources/CIEL/{url}").status_code == 202
        work()
    return v1, v2


def test_the_feed_lists_released_versions_newest_first_with_their_archives_and_deltas(releases, anon_client) -> None:
    v1, v2 = releases
    response = anon_client.get(FEED_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    feed = response.json()
    assert feed["url"] == f"{BASE}versions/feed/"
    assert [entry["id"] for entry in feed["entries"]] == ["v2", "v1"]
    newest, oldest = feed["entries"]
    assert (newest["concepts"], newest["mappings"], oldest["concepts"], oldest["mappings"]) == (4, 2, 3, 2)
    assert (newest["previous"], oldest["previous"], oldest["delta"]) == ("v1", None, None)
    # Computed when the delta was made; v1's never were (the feed computes none)
    assert (newest["checksums"], oldest["checksums"]) == (version_checksums(v2), None)
    export = the_export(v2)
    assert newest["exports"] == [
        {
            "format": "tgz",
            "file_name": export.file_name,
            "size": export.size,
            "sha256": export.sha256,
            "last_updated": "2016-10-05T12:31:13Z",
            "url": f"{BASE}v2/export/?format=tgz",
        }
    ]
    delta = Export.objects.get(version=v2, base=v1)
    assert newest["delta"]["from"] == "v1"
    assert newest["delta"]["url"] == f"{BASE}v2/export/delta/?from=v1"
    assert [(a["size"], a["sha256"], a["url"]) for a in newest["delta"]["archives"]] == [
        (delta.size, delta.sha256, f"{BASE}v2/export/delta/?from=v1&format=tgz")
    ]


def test_an_unchanged_feed_answers_304_to_its_etag_and_a_new_archive_changes_it(
    releases, anon_client, alice_client
) -> None:
    first = anon_client.get(FEED_URL)
    etag = first["ETag"]
    assert etag.startswith('"') and len(etag) == 66
    again = anon_client.get(FEED_URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag and again.content == b""

    assert alice_client.post("/orgs/CIEL/sources/CIEL/v1/export/?format=zip").status_code == 202
    work()
    changed = anon_client.get(FEED_URL, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert [a["format"] for a in changed.json()["entries"][1]["exports"]] == ["tgz", "zip"]


def test_the_atom_feed_links_each_archive_with_its_length_and_sha256(releases, anon_client) -> None:
    v1, v2 = releases
    response = anon_client.get(FEED_URL + "?format=atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    root = ElementTree.fromstring(response.content)
    entries = root.findall(f"{{{ATOM}}}entry")
    assert [entry.findtext(f"{{{ATOM}}}id") for entry in entries] == [f"{BASE}v2/", f"{BASE}v1/"]
    links = {link.get("rel"): link for link in entries[0].findall(f"{{{ATOM}}}link")}
    export, delta = the_export(v2), Export.objects.get(version=v2, base=v1)
    assert links["alternate"].get("length") == str(export.size)
    assert links["alternate"].get(f"{{{NCTS}}}sha256Hash") == export.sha256
    assert links["related"].get(f"{{{NCTS}}}sha256Hash") == delta.sha256
    assert links["related"].get("href") == f"{BASE}v2/export/delta/?from=v1&format=tgz"


def test_an_owner_feed_lists_the_releases_of_its_repositories_the_caller_may_see(releases, org, anon_client) -> None:
    make_version(make_source(org, "Public"), "p1", created_on=T0 + timedelta(days=9))
    make_version(make_source(org, "Hidden", public_access="None"), "h1", created_on=T0 + timedelta(days=10))
    feed = anon_client.get("/orgs/CIEL/feed/").json()
    assert [(entry["repository"], entry["id"]) for entry in feed["entries"]] == [
        ("http://testserver/orgs/CIEL/sources/Public/", "p1"),
        (BASE, "v2"),
        (BASE, "v1"),
    ]


@pytest.mark.parametrize(
    ("url", "status"),
    [("/orgs/CIEL/sources/Nope/versions/feed/", 404), ("/orgs/Nope/feed/", 404), (FEED_URL + "?format=rss", 400)],
)
def test_a_feed_that_is_not_there_is_a_json_error(releases, anon_client, url, status) -> None:
    response = anon_client.get(url)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
