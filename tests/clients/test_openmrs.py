"""The OpenMRS subscription module (emulated request for request, tests/clients/openmrs.py) keeps
working in both profiles: a source release, a collection release and an incremental update."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from tests.clients.conftest import (
    ADMIN_TOKEN,
    CIEL_URL,
    CIEL_VERSION,
    DEMO_URL,
    REFAPP_URL,
    REFAPP_VERSION,
    Deployment,
)
from tests.clients.openmrs import OpenMrsSubscription

pytestmark = pytest.mark.live

EVERYTHING = "includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"


def read_api_body(deployment: Deployment, path: str, query: str = EVERYTHING) -> dict:
    return requests.get(deployment.url(f"{path}?{query}"), timeout=60).json()


def expected_hops(deployment: Deployment, branch: str) -> list[int]:
    # v1: 303 to the one-use link, 302 to the presigned URL; v2: 302 straight to it.
    return [303, 302, 200] if deployment.profile == "v1" else [302, 200]


@pytest.mark.parametrize("token", [ADMIN_TOKEN, None], ids=["with-token", "anonymous"])
def test_a_source_release_is_found_downloaded_and_read(each_profile: Deployment, token) -> None:
    each_profile.ensure_exported(f"{CIEL_URL}{CIEL_VERSION}/")
    subscription = OpenMrsSubscription(each_profile.url(CIEL_URL.rstrip("/")), token)
    release = subscription.latest_release()
    assert release.version == CIEL_VERSION
    assert release.branch == ("tgz" if each_profile.profile == "v1" else "zip")
    assert release.hops == expected_hops(each_profile, release.branch)
    assert (len(release.body["concepts"]), len(release.body["mappings"])) == (1946, 4897)
    assert release.body == read_api_body(each_profile, f"{CIEL_URL}{CIEL_VERSION}/")


def test_a_collection_release_pinned_by_a_five_slash_url(each_profile: Deployment) -> None:
    version_path = f"{REFAPP_URL}{REFAPP_VERSION}/"
    each_profile.ensure_exported(version_path)
    subscription = OpenMrsSubscription(each_profile.url(version_path.rstrip("/")), ADMIN_TOKEN)
    release = subscription.latest_release()
    assert release.version == REFAPP_VERSION
    assert release.body["type"] == "Collection Version"
    assert {concept["id"] for concept in release.body["concepts"]} == {"1002", "159947"}
    assert release.body == read_api_body(each_profile, version_path)


def test_an_incremental_update_gets_every_change_in_one_zip(each_profile: Deployment) -> None:
    # DemoSource's concepts changed before 12:00:29, 18 of its 22 mappings at or after 12:00:30.
    since = datetime(2023, 5, 26, 12, 0, 30, tzinfo=UTC)
    subscription = OpenMrsSubscription(each_profile.url(DEMO_URL.rstrip("/")), ADMIN_TOKEN)
    update = subscription.updates_since(since)
    assert (len(update["concepts"]), len(update["mappings"])) == (0, 18)
    assert update == read_api_body(each_profile, DEMO_URL, f"{EVERYTHING}&updatedSince=2023-05-26T12:00:30Z")
