"""The one-use Location: redeemed once, expires, forged tokens are 404, no credentials needed;
issuing one writes nothing."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from ocl_export.locations import SALT, Claim, read_claim, sign_claim
from ocl_export.models import RedeemedLocation
from ocl_export.reaper import reap_exports
from tests.export_support import EXPORT_URL, ciel_v1, content_of, work

pytestmark = pytest.mark.django_db(transaction=True)


def expired(location: str) -> str:
    """The same genuine Location (same export, same nonce), with an expiry in the past."""
    prefix, token, file_name = location.rsplit("/", 2)
    claim = read_claim(token)
    past = int((timezone.now() - timedelta(seconds=1)).timestamp())
    return f"{prefix}/{sign_claim(Claim(claim.export_id, past, claim.nonce))}/{file_name}"


@pytest.fixture
def location(org, alice_client, anon_client, redis_conn, fs_storage) -> str:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    return anon_client.get(EXPORT_URL)["Location"]


def test_a_location_is_an_absolute_url_ending_with_the_file_name(location) -> None:
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc) == ("http", "testserver")
    assert parts.path.startswith("/exports/download/")
    assert parts.path.endswith("/CIEL_v1.20161004123113.tgz")


def test_a_location_works_once_then_answers_410(location, anon_client) -> None:
    assert anon_client.get(location).status_code == 200
    response = anon_client.get(location)
    assert response.status_code == 410
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_a_head_request_describes_the_download_without_using_the_location(location, anon_client) -> None:
    head = anon_client.head(location)
    assert head.status_code == 200
    assert head["Content-Type"] == "application/gzip"
    assert head["Content-Disposition"] == 'attachment; filename="CIEL_v1.20161004123113.tgz"'
    assert not head.content
    download = anon_client.get(location)
    assert download.status_code == 200
    assert head["Content-Length"] == download["Content-Length"]
    assert anon_client.head(location).status_code == 410  # used now


def test_a_head_request_on_an_expired_or_forged_location_is_410_or_404(location, anon_client) -> None:
    assert anon_client.head(location.replace("/exports/download/", "/exports/download/x")).status_code == 404
    assert anon_client.head(expired(location)).status_code == 410


def test_every_get_issues_a_fresh_location(location, anon_client) -> None:
    second = anon_client.get(EXPORT_URL)["Location"]
    assert second != location
    assert anon_client.get(location).status_code == 200
    assert anon_client.get(second).status_code == 200


def test_an_unused_location_expires(location, anon_client) -> None:
    assert anon_client.get(expired(location)).status_code == 410
    assert anon_client.get(location).status_code == 200  # the same nonce, not expired yet


def test_the_ttl_setting_sets_the_expiry(org, location, anon_client, settings) -> None:
    settings.EXPORT_LOCATION_TTL = 5
    before = timezone.now()
    token = anon_client.get(EXPORT_URL)["Location"].rsplit("/", 2)[1]
    assert timedelta(seconds=4) < read_claim(token).expires_on - before <= timedelta(seconds=6)


def test_issuing_a_location_writes_nothing(location, anon_client) -> None:
    with CaptureQueriesContext(connection) as captured:
        assert anon_client.get(EXPORT_URL).status_code == 303
        assert anon_client.head(EXPORT_URL).status_code == 303
    statements = [query["sql"].lstrip().split(None, 1)[0].upper() for query in captured.captured_queries]
    assert set(statements) == {"SELECT"}
    assert not RedeemedLocation.objects.exists()


def test_only_the_redemption_writes_and_the_reaper_forgets_it_once_expired(location, anon_client) -> None:
    assert anon_client.get(location).status_code == 200
    assert RedeemedLocation.objects.count() == 1
    reap_exports()
    assert anon_client.get(location).status_code == 410  # still known as used while it is valid
    reap_exports(now=timezone.now() + timedelta(days=2))  # by then the token is refused anyway
    assert not RedeemedLocation.objects.exists()


def test_a_forged_or_altered_token_is_404(location, anon_client) -> None:
    prefix, token, file_name = location.rsplit("/", 2)
    forged = signing.dumps("made-up-nonce", salt=SALT)
    claim = read_claim(token)
    for url in (
        f"{prefix}/{token[:-2]}xx/{file_name}",
        f"{prefix}/{token.replace(f'{claim.export_id}.', f'{claim.export_id + 1}.', 1)}/{file_name}",
        f"{prefix}/{sign_claim(Claim(claim.export_id + 1, claim.expires, claim.nonce))}/{file_name}",
        f"{prefix}/{signing.Signer(salt=SALT).sign('not.a-claim')}/{file_name}",
        f"{prefix}/{signing.dumps('x', salt='other')}/{file_name}",
        f"{prefix}/{forged}/{file_name}",
        f"{prefix}/{token}/CIEL_v2.20161004123113.tgz",
    ):
        response = anon_client.get(url)
        assert response.status_code == 404, url
        assert response.json()["detail"]
    assert anon_client.get(location).status_code == 200  # the probes did not use it up


def test_the_download_needs_no_credentials_and_ignores_bad_ones(location, anon_client) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get(location, HTTP_ACCEPT="application/json", content_type="application/json")
    assert response.status_code == 200
    assert content_of(response)[:2] == b"\x1f\x8b"


def test_simultaneous_redemptions_have_one_winner(location) -> None:
    results: list[int] = []
    barrier = threading.Barrier(20)

    def redeem() -> None:
        try:
            barrier.wait(timeout=30)
            response = APIClient().get(location)
            content_of(response)
            results.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Counter(results) == Counter({200: 1, 410: 19})


def test_with_s3_it_redirects_to_a_presigned_url_that_soon_expires(
    org, alice_client, anon_client, redis_conn, s3_bucket
) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    response = anon_client.get(anon_client.get(EXPORT_URL)["Location"])
    assert response.status_code == 302
    presigned = response["Location"]
    assert "X-Amz-Expires=60" in presigned or "Expires=" in presigned
    download = requests.get(presigned, timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/gzip"
    assert download.headers["Content-Disposition"] == 'attachment; filename="CIEL_v1.20161004123113.tgz"'
    assert int(download.headers["Content-Length"]) == len(download.content)
    assert download.content[:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    "file_name", ["CIEL_v1.20150622121229.tgz", "My Source_v 1.20150622121229.zip", "Ünï_v1.x.tgz", "0.0.TOKEN_v1.tgz"]
)
def test_a_locations_path_is_what_the_url_resolver_gives_for_its_token_and_file_name(file_name):
    from django.urls import reverse

    from ocl_export.locations import DOWNLOAD_ROUTE, TOKEN_SLOT, Claim, download_path, sign_claim

    token = sign_claim(Claim(7, 1796224917, "A65PIuXLprt-NjkG"))
    expected = reverse(DOWNLOAD_ROUTE, kwargs={"token": token, "file_name": file_name})
    assert download_path(file_name, "/").replace(TOKEN_SLOT, token, 1) == expected
