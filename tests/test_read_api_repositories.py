"""Owners and repositories: :owner/:repoType/ and :owner/:repoType/:repo/, visibility, errors."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import add_concept, make_org, make_source, make_user, make_version

REPOSITORY_KEYS = [
    "type", "uuid", "id", "short_code", "name", "full_name", "description", "source_type",
    "custom_validation_schema", "public_access", "default_locale", "supported_locales", "website", "url",
    "owner", "owner_type", "owner_url", "created_on", "updated_on", "created_by", "updated_by", "extras",
    "external_id", "versions_url", "concepts_url", "mappings_url",
]  # fmt: skip


def body(response) -> dict | list:
    return orjson.loads(b"".join(response.streaming_content) if response.streaming else response.content)


@pytest.fixture
def private(org):
    """CIEL's private source, with one concept and a released version."""
    source = make_source(org, "Secret", public_access="None")
    add_concept(source, "1")
    make_version(source, "v1")
    return source


def test_the_repository_answers_its_own_representation(anon_client, org):
    source = make_source(org, "CIEL")
    add_concept(source, "1")
    response = anon_client.get("/orgs/CIEL/sources/CIEL/")
    assert response.status_code == 200
    data = body(response)
    assert list(data) == REPOSITORY_KEYS
    assert data["url"] == "/orgs/CIEL/sources/CIEL/"
    assert body(anon_client.get("/orgs/CIEL/sources/CIEL")) == data


def test_the_repository_with_include_parameters_streams_heads_items_under_it(anon_client, org):
    source = make_source(org, "CIEL")
    add_concept(source, "1")
    add_concept(source, "2", retired=True)
    response = anon_client.get("/orgs/CIEL/sources/CIEL/?includeConcepts=true&includeMappings=true&limit=0")
    assert response.streaming
    data = body(response)
    assert list(data) == [*REPOSITORY_KEYS, "concepts", "mappings"]
    assert [c["id"] for c in data["concepts"]] == ["1"]
    assert response["num_found_concepts"] == "1"


def test_the_repository_rejects_bad_parameters(anon_client, org):
    make_source(org, "CIEL")
    assert anon_client.get("/orgs/CIEL/sources/CIEL/?updatedSince=soon").status_code == 400


def test_the_owner_lists_the_repositories_the_caller_may_see(anon_client, bob_client, org, private):
    make_source(org, "CIEL")
    assert [r["id"] for r in body(anon_client.get("/orgs/CIEL/sources/"))] == ["CIEL"]
    assert [r["id"] for r in body(bob_client.get("/orgs/CIEL/sources"))] == ["CIEL", "Secret"]
    assert body(anon_client.get("/orgs/CIEL/collections/")) == []


VISIBILITY = [
    ("anon_client", 404),
    ("charlie_client", 404),
    ("bob_client", 200),
    ("alice_client", 200),
    ("staff_client", 200),
]


@pytest.mark.parametrize("client_name, status", VISIBILITY)
@pytest.mark.parametrize(
    "path",
    [
        "",
        "?includeConcepts=true",
        "v1/",
        "latest/",
        "HEAD/?includeConcepts=true&limit=0",
        "versions/",
        "concepts/",
        "concepts/1/",
        "v1/concepts/1/",
    ],
)
def test_a_private_repository_is_invisible_to_outsiders(request, private, client_name, status, path):
    response = request.getfixturevalue(client_name).get(f"/orgs/CIEL/sources/Secret/{path}")
    assert response.status_code == status
    if status == 404:
        assert response.json() == {"detail": "Repository 'Secret' not found."}


def test_a_public_repository_is_readable_anonymously(anon_client, org):
    for access in ("View", "Edit"):
        source = make_source(org, f"Public{access}", public_access=access)
        make_version(source, "v1")
        assert anon_client.get(f"/orgs/CIEL/sources/Public{access}/v1/").status_code == 200


def test_user_owned_repositories_live_under_users(anon_client, charlie_client, alice, staff_client):
    make_source(alice, "Mine")
    make_source(alice, "Hidden", public_access="None")
    data = body(anon_client.get("/users/alice/sources/Mine/"))
    assert (data["owner"], data["owner_type"], data["owner_url"]) == ("alice", "User", "/users/alice/")
    assert data["url"] == "/users/alice/sources/Mine/"
    assert anon_client.get("/users/alice/sources/Hidden/").status_code == 404
    assert charlie_client.get("/users/alice/sources/Hidden/").status_code == 404
    assert staff_client.get("/users/alice/sources/Hidden/").status_code == 200
    assert anon_client.get("/users/alice/sources/Mine/HEAD/").status_code == 200


def test_user_means_the_callers_own_account(alice_client, alice):
    make_source(alice, "Hidden", public_access="None")
    assert body(alice_client.get("/user/sources/Hidden"))["url"] == "/users/alice/sources/Hidden/"
    assert [r["id"] for r in body(alice_client.get("/user/sources/"))] == ["Hidden"]


def test_user_without_authentication_is_401_json(anon_client, alice):
    make_source(alice, "Mine")
    response = anon_client.get("/user/sources/Mine/")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_a_bad_token_is_401_json_even_on_a_public_repository(org):
    from rest_framework.test import APIClient

    make_source(org, "CIEL")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/orgs/CIEL/sources/CIEL/")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_an_org_member_sees_private_repositories_of_another_org_not(org):
    from tests.conftest import client_for

    other = make_org("PIH")
    make_source(other, "PIHSecret", public_access="None")
    dave = make_user("dave", org=other)
    erin = make_user("erin", org=org)
    assert client_for(dave).get("/orgs/PIH/sources/PIHSecret/").status_code == 200
    assert client_for(erin).get("/orgs/PIH/sources/PIHSecret/").status_code == 404


@pytest.mark.parametrize(
    "path, word",
    [
        ("/orgs/NOPE/sources/CIEL/", "NOPE"),
        ("/users/nobody/sources/CIEL/", "nobody"),
        ("/orgs/CIEL/sources/NOPE/", "NOPE"),
        ("/orgs/CIEL/collections/CIEL/", "CIEL"),
        ("/orgs/NOPE/sources/", "NOPE"),
        ("/nothing/here/", "Not found"),
        ("/orgs/CIEL/sources/CIEL/v1/something/else/", "Not found"),
    ],
)
def test_unknown_owners_repositories_and_urls_are_404_json(anon_client, org, path, word):
    make_source(org, "CIEL")
    response = anon_client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert word in response.json()["detail"]


def test_wrong_methods_are_405_json(alice_client, org):
    make_source(org, "CIEL")
    response = alice_client.post("/orgs/CIEL/sources/CIEL/", {}, format="json")
    assert response.status_code == 405
    assert "detail" in response.json()


def test_head_requests_answer_like_get(anon_client, org):
    make_source(org, "CIEL")
    response = anon_client.head("/orgs/CIEL/sources/CIEL/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert anon_client.head("/orgs/CIEL/sources/NOPE/").status_code == 404
