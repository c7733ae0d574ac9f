"""Removals reach every mirror: an upstream, a mirror of it, and a mirror of that mirror.

The upstream and the mirror are LiveStacks (gunicorn, an RQ worker, their own database and Redis,
buckets on the suite's moto server); the mirror of the mirror is this test's database. Each
mirrors the CIELTEST source and a collection of six of its concepts (references included).
Upstream, three references leave the collection's HEAD (an unreleased later version without
them): one sync of each mirror brings their HEAD ``limit=0`` read to the upstream's. Then the
upstream releases a version made from that HEAD: every collection version's export has the
upstream's sha256 at both mirrors.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from mirror.client import Upstream
from mirror.models import subscribe
from mirror.sync import sync
from ocl_export.produce import produce_archive
from repos.models import Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.items import ItemFilter
from repos.representation.shapes import repository_dict
from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db]

CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"
SOURCE = "/orgs/CIELTEST/sources/CIELTEST/"
COLLECTION = "/orgs/CIELTEST/collections/Starter/"
EVERYTHING_QUERY = "?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"
TOKEN_ENV = "UPSTREAM_TOKEN"


def collection_file(directory: Path, version: str, count: int, created_on: str, released: bool) -> Path:
    """A version of the collection holding the first ``count`` of six CIELTEST concepts."""
    concepts = json.loads(zipfile.ZipFile(CIELTEST).read("export.json"))["concepts"][:6][:count]
    data = {
        "type": "Collection Version",
        "id": version,
        "description": f"{count} starter concepts",
        "released": released,
        "retired": False,
        "owner": "CIELTEST",
        "owner_type": "Organization",
        "created_on": created_on,
        "updated_on": created_on,
        "version_url": f"{COLLECTION}{version}/",
        "collection": {
            "type": "Collection",
            # An OCL file always names it; without one each import would make the collection a new one.
            "uuid": "5f0c3b2a9d1e4c7b8a6f0e1d2c3b4a59",
            "id": "Starter",
            "name": "Starter",
            "collection_type": "Subset",
            "owner": "CIELTEST",
            "owner_type": "Organization",
            "url": COLLECTION,
            "public_access": "View",
            "created_on": "2015-03-01T00:00:00",
            "updated_on": "2015-03-01T00:00:00",
        },
        "concepts": concepts,
        "mappings": [],
        "references": [{"expression": concept["url"], "reference_type": "concepts"} for concept in concepts],
    }
    path = directory / f"starter-{version}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(params=["v1", "v2"])
def stacks(request, s3_server: str, tmp_path: Path) -> Iterator[tuple[LiveStack, LiveStack, str, str]]:
    """(upstream, mirror, their tokens); the mirror holds a subscription to each repository."""
    env = {"OCL_COMPAT": request.param, "LOG_FORMAT": "json"}
    with LiveStack(f"up{request.param}", env=env, s3_endpoint=s3_server) as upstream:
        upstream.import_file(CIELTEST, "--version", "v2015-03-13")
        upstream.manage("create_version", SOURCE, "v1", "--released")
        upstream.import_file(collection_file(tmp_path, "v1", 6, "2015-03-14T00:00:00", True))
        token = upstream.make_user("mirrorbot", admin_of="CIELTEST")
        with LiveStack(f"mid{request.param}", env={**env, TOKEN_ENV: token}, s3_endpoint=s3_server) as mirror:
            for path in (SOURCE, COLLECTION):
                mirror.manage("subscribe", upstream.url(path), "--token-env", TOKEN_ENV, "--no-schedule")
            yield upstream, mirror, token, mirror.make_user("mirrorbot", admin_of="CIELTEST")


def read(stack: LiveStack, path: str) -> dict[str, Any]:
    response = requests.get(stack.url(path + EVERYTHING_QUERY), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def local_has(version: str) -> bool:
    return RepositoryVersion.objects.filter(repository__mnemonic="Starter", version=version).exists()


def local_read(path: str) -> dict[str, Any]:
    """This database's answer to the same read (the mirror of the mirror serves it so)."""
    repository = next(r for r in Repository.objects.all() if r.url == path)
    everything = ItemFilter(include_concepts=True, include_mappings=True, include_retired=True)
    return orjson.loads(b"".join(stream_version(repository.head(), everything, top=repository_dict(repository))))


def sync_mirror(mirror: LiveStack) -> str:
    return mirror.manage("sync", "--all", "--quiet").stdout


def sync_local(subscriptions: list) -> None:
    for subscription in subscriptions:
        report = sync(subscription)
        assert report.ok, report.error


def export_sha256(stack: LiveStack, path: str, version: str, token: str, directory: Path) -> tuple[str, str]:
    download = Upstream(stack.url(path), token).fetch_export(version, directory)
    return hashlib.sha256(download.path.read_bytes()).hexdigest(), download.kind


def local_export_sha256(version: str, fmt: str) -> str:
    found = RepositoryVersion.objects.get(repository__mnemonic="Starter", version=version)
    return produce_archive(found, fmt, f"mom-test/{version}.{fmt}").sha256


def test_removed_references_reach_a_mirror_and_its_mirror_in_one_sync(
    stacks, s3_bucket, live_retries, monkeypatch, tmp_path: Path
) -> None:
    upstream, mirror, upstream_token, mirror_token = stacks
    monkeypatch.setenv(TOKEN_ENV, mirror_token)
    sync_mirror(mirror)
    local = [subscribe(mirror.url(path), token_env=TOKEN_ENV)[0] for path in (SOURCE, COLLECTION)]
    sync_local(local)
    assert read(mirror, COLLECTION) == read(upstream, COLLECTION)
    assert len(local_read(COLLECTION)["references"]) == 6

    # Upstream, three references leave HEAD: an unreleased later version holds the other three.
    upstream.import_file(collection_file(tmp_path, "v2-draft", 3, "2015-03-20T00:00:00", False))
    gone = read(upstream, COLLECTION + "HEAD/")
    assert len(gone["concepts"]) == len(gone["references"]) == 3

    out = sync_mirror(mirror)
    sync_local(local)

    assert "3 removed" in out
    expected = read(upstream, COLLECTION)
    assert len(expected["concepts"]) == len(expected["references"]) == 3
    assert read(mirror, COLLECTION) == expected
    assert local_read(COLLECTION) == expected
    # The HEAD read itself, and what each says left it.
    removed_query = "&includeRemoved=true"
    upstream_removed = requests.get(upstream.url(COLLECTION + EVERYTHING_QUERY + removed_query), timeout=30).json()
    mirror_removed = requests.get(mirror.url(COLLECTION + EVERYTHING_QUERY + removed_query), timeout=30).json()
    assert {entry["id"] for entry in upstream_removed["removed"]} == {e["id"] for e in mirror_removed["removed"]}
    assert len(mirror_removed["removed"]) == 3

    # The upstream releases a version made from that HEAD: every collection version, everywhere, same bytes.
    upstream.manage("create_version", COLLECTION, "v3", "--released")
    sync_mirror(mirror)
    # Each of the mirror's web processes drops its kept versions list when PostgreSQL's
    # notification of the sync's commit reaches it, a moment later: until then a run may see
    # the old list and take nothing. Runs are idempotent; the next one takes v3.
    wait_until(lambda: sync_local(local) or local_has("v3"), timeout=20, step=0.5, what="v3 at the mirror's mirror")
    for version in ("v1", "v3"):
        upstream_sha, fmt = export_sha256(upstream, COLLECTION, version, upstream_token, tmp_path)
        mirror_sha, _ = export_sha256(mirror, COLLECTION, version, mirror_token, tmp_path)
        assert mirror_sha == upstream_sha, version
        assert local_export_sha256(version, fmt) == upstream_sha, version
    assert read(mirror, COLLECTION) == read(upstream, COLLECTION) == local_read(COLLECTION)
