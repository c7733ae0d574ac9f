"""What the hot requests cost the database: a fixed, small number of reads and no writes.

These are the requests every client starts with and a terminology browser makes nothing but
(``bench/bench_requests.py`` measures their speed). A count that grows means an N+1 or a lookup
split into steps again; a write means a GET started to store something per call.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ocl_export.models import Export
from tests.export_support import EXPORT_URL, ciel_v1, work

pytestmark = pytest.mark.django_db(transaction=True)

REPO = "/orgs/CIEL/sources/CIEL/"


@pytest.fixture
def exported(org, alice_client, redis_conn, fs_storage) -> Export:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    return Export.objects.get()


def statements(client, method: str, url: str, status: int) -> list[str]:
    """The first word of each SQL statement one anonymous request runs."""
    with CaptureQueriesContext(connection) as captured:
        response = client.generic(method, url)
        assert response.status_code == status, (url, response.content)
        if response.streaming:
            b"".join(response.streaming_content)
    return [query["sql"].lstrip().split(None, 1)[0].upper() for query in captured.captured_queries]


@pytest.mark.parametrize(
    ("method", "url", "status", "queries"),
    [
        ("GET", EXPORT_URL, 303, 1),
        ("HEAD", EXPORT_URL, 303, 1),
        ("GET", f"{REPO}v1/concepts/1065/", 200, 1),
        ("GET", f"{REPO}v1/mappings/M1/", 200, 1),
        ("GET", f"{REPO}concepts/1065/", 200, 1),
        ("GET", f"{REPO}versions/", 200, 2),
        ("GET", REPO, 200, 1),
        ("GET", f"{REPO}latest/", 200, 1),
        ("GET", f"{REPO}v1/", 200, 1),
    ],
)
def test_a_hot_request_reads_a_fixed_few_rows_and_writes_nothing(
    exported, anon_client, method: str, url: str, status: int, queries: int
) -> None:
    assert statements(anon_client, method, url, status) == ["SELECT"] * queries


def test_the_job_status_link_is_one_read(exported, anon_client) -> None:
    assert statements(anon_client, "GET", f"/exports/jobs/{exported.pk}/", 200) == ["SELECT"]


def test_a_private_repository_costs_its_members_one_more_read_and_outsiders_a_404(
    exported, bob_client, anon_client
) -> None:
    exported.version.repository.__class__.objects.update(public_access="None")
    # his token, the item with its repository, his membership
    assert statements(bob_client, "GET", f"{REPO}v1/concepts/1065/", 200) == ["SELECT"] * 3
    assert anon_client.get(f"{REPO}v1/concepts/1065/").status_code == 404


def test_redeeming_a_location_reads_the_export_and_inserts_its_nonce(exported, anon_client) -> None:
    location = anon_client.get(EXPORT_URL)["Location"]
    assert statements(anon_client, "GET", location, 200) == ["SELECT", "INSERT"]
