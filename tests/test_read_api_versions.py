"""GET/POST :owner/:repoType/:repo/versions and DELETE :owner/:repoType/:repo/:version/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from repos.models import RepositoryVersion
from repos.signals import version_created
from tests.factories import add_concept, make_source, make_version

URL = "/orgs/CIEL/sources/CIEL/versions"
T0 = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def ciel(org):
    source = make_source(org, "CIEL")
    add_concept(source, "1")
    make_version(source, "v1", created_on=T0)
    make_version(source, "v3", created_on=T0 + timedelta(days=2), released=False)
    make_version(source, "v2", created_on=T0 + timedelta(days=1))
    return source


@pytest.mark.parametrize("url", [URL, f"{URL}/"])
def test_versions_are_a_bare_array_newest_first_with_head_last(anon_client, ciel, url):
    response = anon_client.get(url)
    assert response.status_code == 200
    data = response.json()
    assert [v["id"] for v in data] == ["v3", "v2", "v1", "HEAD"]
    assert [v["released"] for v in data] == [False, True, True, False]
    assert "source" not in data[0]
    assert data[0]["version_url"] == "/orgs/CIEL/sources/CIEL/v3/"
    assert data[0]["previous_version_url"] == "/orgs/CIEL/sources/CIEL/v1/"


@pytest.mark.parametrize(
    ("released", "expected"), [("true", ["v2", "v1"]), ("True", ["v2", "v1"]), ("false", ["v3", "HEAD"])]
)
def test_released_keeps_the_versions_released_or_not(anon_client, ciel, released, expected):
    response = anon_client.get(f"{URL}/?released={released}")
    assert [v["id"] for v in response.json()] == expected


def test_an_unreadable_released_is_a_400_json_naming_it(anon_client, ciel):
    response = anon_client.get(f"{URL}?released=maybe")
    assert response.status_code == 400
    assert "released" in response.json()["detail"]


def test_versions_made_in_one_instant_are_ordered_by_creation(anon_client, org):
    source = make_source(org, "CIEL")
    for name in ("a", "b", "c"):
        make_version(source, name, created_on=T0)
    assert [v["id"] for v in anon_client.get(URL).json()] == ["c", "b", "a", "HEAD"]


def test_an_admin_creates_a_version_of_head(alice_client, ciel, django_capture_on_commit_callbacks):
    sent = []

    def listener(sender, version, user, **kwargs):
        sent.append((version.version, user.username))

    version_created.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = alice_client.post(
                URL,
                {"id": "v4", "description": "Fourth", "released": True, "external_id": "x4", "extras": {"a": 1}},
                format="json",
            )
    finally:
        version_created.disconnect(listener)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["type"] == "Source Version"
    assert (data["id"], data["description"], data["released"], data["external_id"]) == ("v4", "Fourth", True, "x4")
    assert data["extras"] == {"a": 1}
    assert data["created_by"] == "alice"
    assert data["previous_version_url"] == "/orgs/CIEL/sources/CIEL/v3/"
    assert sent == [("v4", "alice")]
    version = RepositoryVersion.objects.get(repository=ciel, version="v4")
    assert list(version.concepts.values_list("mnemonic", flat=True)) == ["1"]
    assert alice_client.get("/orgs/CIEL/sources/CIEL/latest/").json()["id"] == "v4"


def test_the_signal_waits_for_the_commit(alice_client, ciel, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice_client.post(URL, {"id": "v4"}, format="json")
    assert len(callbacks) == 1


def test_a_plain_member_may_not_create_a_version(bob_client, ciel):
    response = bob_client.post(URL, {"id": "v4"}, format="json")
    assert response.status_code == 403
    assert "detail" in response.json()


def test_an_anonymous_caller_must_authenticate_to_create_a_version(anon_client, ciel):
    response = anon_client.post(URL, {"id": "v4"}, format="json")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_an_existing_version_id_is_a_conflict(alice_client, ciel):
    response = alice_client.post(f"{URL}/", {"id": "v1"}, format="json")
    assert response.status_code == 409
    assert "v1" in response.json()["detail"]


@pytest.mark.parametrize("name", ["HEAD", "head", "latest", "export", "concepts", "mappings", "versions"])
def test_reserved_version_ids_are_refused(alice_client, ciel, name):
    response = alice_client.post(URL, {"id": name}, format="json")
    assert response.status_code == 400
    assert "id" in response.json()["errors"]


@pytest.mark.parametrize("name", ["a/b", "..", "v 1", "", "é"])
def test_version_ids_must_be_url_safe(alice_client, ciel, name):
    assert alice_client.post(URL, {"id": name}, format="json").status_code == 400


def test_an_empty_json_post_is_a_400_not_a_crash(alice_client, ciel):
    response = alice_client.post(URL, content_type="application/json", HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize("depth", [100, 5000])
def test_a_deeply_nested_body_is_a_400_and_creates_nothing(alice_client, ciel, depth):
    body = '{"id": "v4", "extras": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = alice_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "nested deeper than" in response.json()["detail"]
    assert not RepositoryVersion.objects.filter(version="v4").exists()


@pytest.mark.parametrize(
    "extras", [{"note": "a\u0000b"}, {"a\u0000b": 1}, {"list": [{"deep": "\u0000"}]}], ids=["value", "key", "nested"]
)
def test_a_nul_character_in_extras_is_a_400_and_creates_nothing(alice_client, ciel, extras):
    response = alice_client.post(URL, {"id": "v4", "extras": extras}, format="json")
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["detail"]
    assert not RepositoryVersion.objects.filter(version="v4").exists()
    assert alice_client.post(URL, {"id": "v4", "extras": {"note": "ab"}}, format="json").status_code == 201


def test_staff_and_the_owner_of_a_user_repository_may_create_versions(staff_client, alice_client, alice):
    make_source(alice, "Mine")
    assert alice_client.post("/users/alice/sources/Mine/versions/", {"id": "v1"}, format="json").status_code == 201
    assert staff_client.post("/users/alice/sources/Mine/versions/", {"id": "v2"}, format="json").status_code == 201


def test_posting_to_an_invisible_repository_is_404(charlie_client, org):
    make_source(org, "Secret", public_access="None")
    assert charlie_client.post("/orgs/CIEL/sources/Secret/versions/", {"id": "v1"}, format="json").status_code == 404


def test_an_admin_deletes_a_version(alice_client, ciel):
    response = alice_client.delete("/orgs/CIEL/sources/CIEL/v2/")
    assert response.status_code == 204
    assert alice_client.get("/orgs/CIEL/sources/CIEL/v2/").status_code == 404


@pytest.mark.parametrize("client_name, status", [("anon_client", 401), ("bob_client", 403)])
def test_only_admins_delete_versions(request, ciel, client_name, status):
    client = request.getfixturevalue(client_name)
    assert client.delete("/orgs/CIEL/sources/CIEL/v2").status_code == status
    assert RepositoryVersion.objects.filter(repository=ciel, version="v2").exists()


@pytest.mark.parametrize("name", ["HEAD", "latest"])
def test_head_and_latest_cannot_be_deleted(alice_client, ciel, name):
    response = alice_client.delete(f"/orgs/CIEL/sources/CIEL/{name}/")
    assert response.status_code == 405
    assert "detail" in response.json()


def test_other_methods_are_405_json(alice_client, ciel):
    response = alice_client.put(URL, {"id": "v9"}, format="json")
    assert response.status_code == 405
    assert "detail" in response.json()


def test_listing_versions_costs_a_fixed_number_of_queries(anon_client, org, django_assert_max_num_queries):
    source = make_source(org, "CIEL")
    for n in range(20):
        make_version(source, f"v{n}")
    with django_assert_max_num_queries(6):
        assert len(anon_client.get(URL).json()) == 21
