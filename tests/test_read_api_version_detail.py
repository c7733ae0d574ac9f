"""GET :owner/:repoType/:repo/:version/ — the body the export equals, its parameters and headers."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.http import StreamingHttpResponse

from repos.params import DEFAULT_LIMIT
from tests.factories import add_concept, add_mapping, make_source, make_version

URL = "/orgs/CIEL/sources/CIEL/v1/"
EVERYTHING = "includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"
T0 = datetime(2023, 5, 26, 12, 0, 30, tzinfo=UTC)

VERSION_KEYS = [
    "type", "uuid", "id", "short_code", "name", "full_name", "description", "source_type",
    "custom_validation_schema", "public_access", "default_locale", "supported_locales", "website", "url",
    "owner", "owner_type", "owner_url", "retired", "version_url", "previous_version_url", "created_on",
    "updated_on", "created_by", "updated_by", "extras", "external_id", "version", "released", "concepts_url",
    "mappings_url", "source",
]  # fmt: skip
CONCEPT_KEYS = [
    "type", "uuid", "id", "external_id", "concept_class", "datatype", "display_name", "display_locale", "names",
    "descriptions", "extras", "retired", "retire_reason", "source", "source_url", "owner", "owner_type",
    "owner_url", "version", "created_on", "updated_on", "version_created_on", "version_created_by",
    "update_comment", "is_latest_version", "url", "version_url", "previous_version_url",
]  # fmt: skip
NAME_KEYS = ["uuid", "name", "external_id", "type", "locale", "locale_preferred", "name_type"]
MAPPING_KEYS = [
    "type", "uuid", "id", "external_id", "retired", "retire_reason", "map_type", "source", "owner", "owner_type",
    "owner_url", "from_concept_code", "from_concept_name", "from_concept_url", "to_concept_code",
    "to_concept_name", "to_concept_url", "from_source_owner", "from_source_owner_type", "from_source_url",
    "from_source_name", "to_source_owner", "to_source_owner_type", "to_source_url", "to_source_name", "url",
    "version", "version_url", "is_latest_version", "sort_weight", "extras", "update_comment", "created_on",
    "updated_on", "created_by", "updated_by",
]  # fmt: skip


@pytest.fixture
def ciel(org):
    """CIEL v1: concepts 1..5 updated a minute apart from T0 (4 retired), mappings M1, M2 (M2 retired)."""
    source = make_source(org, "CIEL")
    concepts = [
        add_concept(source, str(n), updated_on=T0 + timedelta(minutes=n - 1), retired=n == 4) for n in range(1, 6)
    ]
    add_mapping(source, "M1", from_concept=concepts[0], to_concept=concepts[1], updated_on=T0)
    add_mapping(source, "M2", from_concept=concepts[0], to_concept_code="X1", retired=True, updated_on=T0)
    make_version(source, "v1", created_on=T0 + timedelta(days=1))
    return source


def body(response) -> dict:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return orjson.loads(raw)


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


def test_it_answers_the_version_with_its_keys_in_the_contract_order(anon_client, ciel):
    response = anon_client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = body(response)
    assert list(data) == VERSION_KEYS
    assert data["type"] == "Source Version"
    assert data["id"] == data["version"] == "v1"
    assert data["version_url"] == URL
    assert data["source"]["url"] == "/orgs/CIEL/sources/CIEL/"
    assert "concepts" not in data


def test_it_lists_concepts_before_mappings_with_keys_in_the_contract_order(anon_client, ciel):
    data = body(anon_client.get(f"{URL}?{EVERYTHING}"))
    assert list(data) == [*VERSION_KEYS, "concepts", "mappings"]
    assert [list(concept) for concept in data["concepts"]] == [CONCEPT_KEYS] * 5
    assert list(data["concepts"][0]["names"][0]) == NAME_KEYS
    assert [list(mapping) for mapping in data["mappings"]] == [MAPPING_KEYS] * 2
    assert data["concepts"][0]["url"] == "/orgs/CIEL/sources/CIEL/concepts/1/"
    assert data["concepts"][0]["updated_on"] == "2023-05-26T12:00:30Z"
    assert data["mappings"][1]["to_concept_url"] is None


def test_limit_zero_streams_every_item(anon_client, ciel):
    response = anon_client.get(f"{URL}?{EVERYTHING}")
    assert isinstance(response, StreamingHttpResponse)
    data = body(response)
    assert ids(data["concepts"]) == ["1", "2", "3", "4", "5"]
    assert ids(data["mappings"]) == ["M1", "M2"]
    assert response["num_found_concepts"] == "5"
    assert response["num_returned_concepts"] == "5"
    assert response["limit"] == "0"


def test_retired_items_are_left_out_unless_include_retired(anon_client, ciel):
    without = body(anon_client.get(f"{URL}?includeConcepts=true&includeMappings=true&limit=0"))
    assert ids(without["concepts"]) == ["1", "2", "3", "5"]
    assert ids(without["mappings"]) == ["M1"]
    with_retired = body(anon_client.get(f"{URL}?includeConcepts=TRUE&includeMappings=True&includeRetired=true&limit=0"))
    assert ids(with_retired["concepts"]) == ["1", "2", "3", "4", "5"]
    assert [c["retired"] for c in with_retired["concepts"]] == [False, False, False, True, False]


def test_offset_and_limit_page_each_list_and_the_headers_tell_the_figures(anon_client, ciel):
    response = anon_client.get(f"{URL}?includeConcepts=true&includeMappings=true&includeRetired=true&offset=1&limit=2")
    assert not response.streaming
    data = body(response)
    assert ids(data["concepts"]) == ["2", "3"]
    assert ids(data["mappings"]) == ["M2"]
    assert response["num_found_concepts"] == "5"
    assert response["num_returned_concepts"] == "2"
    assert response["num_found_mappings"] == "2"
    assert response["num_returned_mappings"] == "1"
    assert response["offset"] == "1"
    assert response["limit"] == "2"


def test_an_offset_past_the_end_answers_empty_lists(anon_client, ciel):
    response = anon_client.get(f"{URL}?includeConcepts=true&offset=50")
    assert body(response)["concepts"] == []
    assert response["num_returned_concepts"] == "0"


def test_items_without_limit_come_in_pages_of_the_default_size(anon_client, org):
    source = make_source(org, "CIEL")
    for n in range(DEFAULT_LIMIT + 3):
        add_concept(source, f"C{n:03}")
    make_version(source, "v1")
    response = anon_client.get(f"{URL}?includeConcepts=true")
    assert len(body(response)["concepts"]) == DEFAULT_LIMIT
    assert response["num_found_concepts"] == str(DEFAULT_LIMIT + 3)
    assert response["limit"] == str(DEFAULT_LIMIT)


def test_no_page_headers_without_items(anon_client, ciel):
    response = anon_client.get(URL)
    assert "num_found_concepts" not in response
    assert "offset" not in response


@pytest.mark.parametrize(
    "since, expected",
    [
        ("2023-05-26T12:02:30Z", ["3", "4", "5"]),  # exactly concept 3's updated_on: included
        ("2023-05-26T12:02:30.000001Z", ["4", "5"]),
        ("2023-05-26T14:02:30%2B02:00", ["3", "4", "5"]),  # an offset, encoded
        ("2023-05-26T14:02:30+02:00", ["3", "4", "5"]),  # an unencoded "+" arrives as a space
        ("2023-05-26T10:02:30-02:00", ["3", "4", "5"]),
        ("2023-05-26T12:02:30", ["3", "4", "5"]),  # naive: UTC
        ("2023-05-26", ["1", "2", "3", "4", "5"]),  # a date: its midnight UTC
        ("2023-05-27", []),
        ("20230526", ["1", "2", "3", "4", "5"]),  # ISO 8601 basic date
        ("20230526120230", ["3", "4", "5"]),  # lastUpdated as in export file names
    ],
)
def test_updated_since_keeps_items_updated_at_or_after_the_instant(anon_client, ciel, since, expected):
    response = anon_client.get(f"{URL}?includeConcepts=true&includeRetired=true&limit=0&updatedSince={since}")
    assert response.status_code == 200, body(response)
    assert ids(body(response)["concepts"]) == expected
    assert response["num_found_concepts"] == str(len(expected))


def test_updated_since_applies_to_mappings_too(anon_client, ciel):
    data = body(anon_client.get(f"{URL}?includeMappings=true&includeRetired=true&updatedSince=2023-05-26T12:00:31Z"))
    assert data["mappings"] == []


@pytest.mark.parametrize(
    "query, name",
    [
        ("updatedSince=yesterday", "updatedSince"),
        ("updatedSince=", "updatedSince"),
        ("updatedSince=2023-13-01", "updatedSince"),
        ("updatedSince=2023", "updatedSince"),
        ("updatedSince=2023-05", "updatedSince"),
        ("updatedSince=20231301000000", "updatedSince"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-3", "offset"),
        ("offset=x", "offset"),
        ("includeConcepts=yes", "includeConcepts"),
        ("includeMappings=1", "includeMappings"),
        ("includeRetired=", "includeRetired"),
    ],
)
def test_unreadable_parameters_answer_400_json_naming_the_parameter(anon_client, ciel, query, name):
    response = anon_client.get(f"{URL}?includeConcepts=true&{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert name in response.json()["detail"]


def test_head_names_the_live_state(anon_client, ciel):
    add_concept(ciel, "6")
    data = body(anon_client.get("/orgs/CIEL/sources/CIEL/HEAD/?includeConcepts=true&limit=0"))
    assert data["id"] == "HEAD"
    assert ids(data["concepts"]) == ["1", "2", "3", "5", "6"]
    v1 = body(anon_client.get(f"{URL}?includeConcepts=true&limit=0"))
    assert "6" not in ids(v1["concepts"])


def test_latest_names_the_newest_released_version(anon_client, ciel):
    make_version(ciel, "v2", created_on=T0 + timedelta(days=2))
    make_version(ciel, "v3-draft", released=False, created_on=T0 + timedelta(days=3))
    response = anon_client.get("/orgs/CIEL/sources/CIEL/latest/")
    assert response.status_code == 200
    assert body(response)["id"] == "v2"
    assert body(anon_client.get("/orgs/CIEL/sources/CIEL/latest"))["id"] == "v2"


def test_latest_without_a_released_version_is_404_json(anon_client, org):
    source = make_source(org, "CIEL")
    make_version(source, "draft", released=False)
    response = anon_client.get("/orgs/CIEL/sources/CIEL/latest/")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_it_answers_with_and_without_the_trailing_slash(anon_client, ciel):
    assert body(anon_client.get(URL.rstrip("/"))) == body(anon_client.get(URL))


def test_compress_true_answers_the_same_body_as_a_zip_holding_export_json(anon_client, ciel):
    plain = anon_client.get(f"{URL}?{EVERYTHING}")
    zipped = anon_client.get(f"{URL}?{EVERYTHING}", HTTP_COMPRESS="true")
    assert zipped.status_code == 200
    assert zipped["Content-Type"] == "application/zip"
    assert zipped.streaming
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert archive.testzip() is None
    assert archive.namelist() == ["export.json"]
    assert archive.read("export.json") == b"".join(plain.streaming_content)
    assert zipped["num_found_concepts"] == "5"


def test_compress_works_for_paged_and_incremental_reads(anon_client, ciel):
    url = f"{URL}?includeConcepts=true&includeRetired=true&updatedSince=20230526120330"
    zipped = anon_client.get(url, HTTP_COMPRESS="TRUE")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert orjson.loads(archive.read("export.json")) == body(anon_client.get(url))


def unzipped(response) -> dict:
    return orjson.loads(zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).read("export.json"))


def test_compress_answers_every_matching_item_whatever_limit_and_offset_say(anon_client, ciel):
    # OpenMRS sends limit=100000 with its incremental updates; OCL v2 ignores paging when zipping.
    url = f"{URL}?includeConcepts=true&includeMappings=true&includeRetired=true&limit=2&offset=1"
    zipped = anon_client.get(url, HTTP_COMPRESS="true")
    assert unzipped(zipped) == body(anon_client.get(f"{URL}?{EVERYTHING}"))
    assert (zipped["limit"], zipped["offset"], zipped["num_returned_concepts"]) == ("0", "0", "5")
    assert len(body(anon_client.get(url))["concepts"]) == 2  # without Compress, paging still applies


def test_compress_still_refuses_an_unreadable_limit(anon_client, ciel):
    response = anon_client.get(f"{URL}?includeConcepts=true&limit=many", HTTP_COMPRESS="true")
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


def test_compress_answers_a_whole_concept_listing_too(anon_client, ciel):
    zipped = anon_client.get("/orgs/CIEL/sources/CIEL/v1/concepts/?limit=1&includeRetired=true", HTTP_COMPRESS="true")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content)))
    assert ids(orjson.loads(archive.read("export.json"))) == ["1", "2", "3", "4", "5"]


def test_head_answers_the_headers_of_get_without_a_body(anon_client, ciel):
    response = anon_client.head(f"{URL}?{EVERYTHING}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["num_found_concepts"] == "5"
    assert b"".join(response.streaming_content) == b""


def test_head_of_a_page_states_the_length_get_would_send(anon_client, ciel):
    url = f"{URL}?includeConcepts=true"
    response = anon_client.head(url)
    assert response.content == b""
    assert response["Content-Length"] == str(len(anon_client.get(url).content))


def test_json_content_type_and_accept_headers_on_get_are_fine(anon_client, ciel):
    response = anon_client.get(URL, HTTP_ACCEPT="application/json", CONTENT_TYPE="application/json")
    assert response.status_code == 200
    assert anon_client.get(URL, HTTP_ACCEPT="text/html").status_code == 200


def test_unknown_version_is_404_json(anon_client, ciel):
    response = anon_client.get("/orgs/CIEL/sources/CIEL/v9/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "v9" in response.json()["detail"]


def test_a_version_of_a_collection_ends_with_its_references(anon_client, org):
    from tests.factories import add_to_collection, make_collection

    source = make_source(org, "CIEL")
    concept = add_concept(source, "1")
    collection = make_collection(org, "RefApp")
    add_to_collection(collection, concept)
    head = collection.head()
    head.references = [{"expression": "/orgs/CIEL/sources/CIEL/concepts/1/"}]
    head.save()
    make_version(collection, "v1")
    data = body(anon_client.get(f"/orgs/CIEL/collections/RefApp/v1/?{EVERYTHING}"))
    assert data["type"] == "Collection Version"
    assert list(data)[-4:] == ["collection", "concepts", "mappings", "references"]
    assert ids(data["concepts"]) == ["1"]
    assert data["concepts"][0]["url"] == "/orgs/CIEL/sources/CIEL/concepts/1/"
    assert data["references"] == [{"expression": "/orgs/CIEL/sources/CIEL/concepts/1/"}]


def test_limit_zero_is_written_batch_by_batch_not_built_in_memory(anon_client, ciel, settings):
    settings.EXPORT_BATCH_SIZE = 2
    response = anon_client.get(f"{URL}?{EVERYTHING}")
    chunks = list(response.streaming_content)
    # head, '"concepts":[', three batches of concepts, ']', '"mappings":[', one batch, ']', '}'
    assert len(chunks) >= 8
    assert len(orjson.loads(b"".join(chunks))["concepts"]) == 5


def test_the_number_of_queries_does_not_grow_with_the_items(anon_client, org, django_assert_max_num_queries):
    source = make_source(org, "CIEL")
    for n in range(30):
        add_mapping(source, f"M{n}", from_concept=add_concept(source, str(n)), to_concept_code="X")
    make_version(source, "v1")
    with django_assert_max_num_queries(15):
        response = anon_client.get(f"{URL}?{EVERYTHING}")
        assert len(orjson.loads(b"".join(response.streaming_content))["concepts"]) == 30
