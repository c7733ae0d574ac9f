"""A real OCL v2 export, imported, then read back through the read API: the file's items come back."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import orjson
import pytest

from repos.importers import import_file

FIXTURE = Path(__file__).parent / "fixtures" / "ocl-v2-DemoSource_v1.0.20230526120030.zip"
URL = "/orgs/DemoOrg/sources/DemoSource/v1.0/?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"

CONCEPT_FIELDS = [
    "type", "uuid", "id", "external_id", "concept_class", "datatype", "display_name", "display_locale",
    "descriptions", "retired", "source", "source_url", "owner", "owner_type", "owner_url", "version",
    "created_on", "updated_on", "version_created_on", "version_created_by", "update_comment",
    "is_latest_version", "url", "version_url", "previous_version_url",
]  # fmt: skip
NAME_FIELDS = ["name", "external_id", "type", "locale", "locale_preferred", "name_type"]
MAPPING_FIELDS = [
    "type", "uuid", "id", "external_id", "retired", "map_type", "source", "owner", "owner_type",
    "from_concept_code", "from_concept_url", "to_concept_code", "to_concept_url", "from_source_owner",
    "from_source_owner_type", "from_source_url", "from_source_name", "to_source_owner", "to_source_owner_type",
    "to_source_url", "to_source_name", "url", "version", "version_url", "is_latest_version", "sort_weight",
    "update_comment", "created_on", "updated_on", "created_by", "updated_by",
]  # fmt: skip


@pytest.fixture
def demo_file() -> dict:
    with zipfile.ZipFile(FIXTURE) as archive:
        return json.loads(archive.read("export.json"))


@pytest.fixture
def served(db, anon_client) -> dict:
    import_file(FIXTURE)
    response = anon_client.get(URL)
    assert response.status_code == 200
    return orjson.loads(b"".join(response.streaming_content))


def by_uuid(items: list[dict]) -> dict[str, dict]:
    return {item["uuid"]: item for item in items}


def test_the_imported_version_serves_the_files_version(served, demo_file):
    for key in ("type", "id", "description", "released", "url", "version_url", "owner", "owner_type"):
        assert served[key] == demo_file[key], key
    assert served["source"]["url"] == demo_file["url"]
    assert list(served)[-2:] == ["concepts", "mappings"]


def test_the_imported_version_serves_every_concept_of_the_file(served, demo_file):
    assert len(served["concepts"]) == len(demo_file["concepts"]) == 23
    ours = by_uuid(served["concepts"])
    for theirs in demo_file["concepts"]:
        concept = ours[theirs["uuid"]]
        assert {key: concept[key] for key in CONCEPT_FIELDS} == {key: theirs[key] for key in CONCEPT_FIELDS}
        assert [{key: name[key] for key in NAME_FIELDS} for name in concept["names"]] == [
            {key: name.get(key) for key in NAME_FIELDS} for name in theirs["names"]
        ]
        assert concept["extras"] == (theirs["extras"] or {})


def test_the_imported_version_serves_every_mapping_of_the_file(served, demo_file):
    assert len(served["mappings"]) == len(demo_file["mappings"]) == 22
    ours = by_uuid(served["mappings"])
    for theirs in demo_file["mappings"]:
        mapping = ours[theirs["uuid"]]
        assert {key: mapping[key] for key in MAPPING_FIELDS} == {key: theirs[key] for key in MAPPING_FIELDS}
        assert mapping["extras"] == (theirs["extras"] or {})


def test_the_imported_items_answer_at_their_urls(served, anon_client):
    for item in [*served["concepts"][:3], *served["mappings"][:3]]:
        assert orjson.loads(anon_client.get(item["version_url"]).content) == item
        assert anon_client.get(item["url"]).status_code == 200
