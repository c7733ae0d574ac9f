"""Concepts and mappings at the URLs the JSON carries, and their listings."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import add_concept, add_mapping, add_to_collection, make_collection, make_source, make_version


def body(response) -> dict | list:
    return orjson.loads(b"".join(response.streaming_content) if response.streaming else response.content)


@pytest.fixture
def ciel(org):
    """v1 holds concept 1's first version and M1; HEAD holds concept 1's second (retired) version."""
    source = make_source(org, "CIEL")
    first = add_concept(source, "1", display_name="Yes")
    add_concept(source, "2")
    add_mapping(source, "M1", from_concept=first, to_concept_code="X")
    make_version(source, "v1")
    add_concept(source, "1", display_name="Yes!", retired=True)
    return source


def test_every_url_and_version_url_in_a_version_answers_that_item(anon_client, ciel):
    data = body(anon_client.get("/orgs/CIEL/sources/CIEL/v1/?includeConcepts=true&includeMappings=true&limit=0"))
    for item in [*data["concepts"], *data["mappings"]]:
        at_version_url = anon_client.get(item["version_url"])
        assert at_version_url.status_code == 200
        assert body(at_version_url) == item
        assert anon_client.get(item["url"]).status_code == 200


def test_the_concept_url_answers_heads_current_version(anon_client, ciel):
    data = body(anon_client.get("/orgs/CIEL/sources/CIEL/concepts/1/"))
    assert (data["display_name"], data["retired"], data["is_latest_version"]) == ("Yes!", True, True)
    assert data["previous_version_url"] is not None
    previous = body(anon_client.get(data["previous_version_url"]))
    assert (previous["display_name"], previous["is_latest_version"]) == ("Yes", False)


def test_a_versions_member_answers_as_the_version_holds_it(anon_client, ciel):
    data = body(anon_client.get("/orgs/CIEL/sources/CIEL/v1/concepts/1"))
    assert data["display_name"] == "Yes"
    assert body(anon_client.get("/orgs/CIEL/sources/CIEL/v1/mappings/M1/"))["to_concept_url"] is None


@pytest.mark.parametrize(
    "path",
    [
        "concepts/999/",
        "concepts/1/not-a-uuid/",
        "v1/concepts/999/",
        "mappings/M9/",
        "v9/concepts/1/",
    ],
)
def test_unknown_items_are_404_json(anon_client, ciel, path):
    response = anon_client.get(f"/orgs/CIEL/sources/CIEL/{path}")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_concept_lists_take_the_version_parameters(anon_client, ciel):
    response = anon_client.get("/orgs/CIEL/sources/CIEL/concepts/?includeRetired=true&limit=0")
    assert [c["id"] for c in body(response)] == ["2", "1"]
    assert response["num_found"] == "2"
    head_live = body(anon_client.get("/orgs/CIEL/sources/CIEL/concepts"))
    assert [c["id"] for c in head_live] == ["2"]
    paged = anon_client.get("/orgs/CIEL/sources/CIEL/v1/concepts/?limit=1&offset=1")
    assert [c["id"] for c in body(paged)] == ["2"]
    assert (paged["num_found"], paged["num_returned"], paged["offset"]) == ("2", "1", "1")
    assert [m["id"] for m in body(anon_client.get("/orgs/CIEL/sources/CIEL/v1/mappings/"))] == ["M1"]
    assert anon_client.get("/orgs/CIEL/sources/CIEL/concepts/?limit=x").status_code == 400


def test_a_collection_answers_the_items_it_holds(anon_client, org, ciel):
    concept = ciel.concept_versions.get(mnemonic="2")
    collection = make_collection(org, "RefApp")
    add_to_collection(collection, concept)
    assert (
        body(anon_client.get("/orgs/CIEL/collections/RefApp/concepts/2/"))["url"]
        == "/orgs/CIEL/sources/CIEL/concepts/2/"
    )
    assert anon_client.get(f"/orgs/CIEL/collections/RefApp/concepts/2/{concept.uuid}/").status_code == 200
    assert anon_client.get("/orgs/CIEL/collections/RefApp/concepts/1/").status_code == 404
