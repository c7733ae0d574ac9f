"""Real OCL export files: imported, exported over HTTP, and the same concepts and mappings come back."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from repos.importers import import_file
from repos.models import RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.items import EVERYTHING
from tests.export_support import content_of, fetch_archive, parsed, work

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).parent / "fixtures"
CASES = [
    (FIXTURES / "ocl-v1-CIEL-subset-2015.tgz", "/orgs/CIEL/sources/CIEL/v2015-06-22/", 1946, 4897),
    (FIXTURES / "ocl-v2-DemoSource_v1.0.20230526120030.zip", "/orgs/DemoOrg/sources/DemoSource/v1.0/", 23, 22),
]
CONCEPT_KEYS = ("id", "version", "external_id", "retired", "datatype", "concept_class", "display_name", "url")
MAPPING_KEYS = ("id", "external_id", "retired", "map_type", "from_concept_code", "to_concept_code", "url")


def read_fixture(path: Path) -> dict[str, Any]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as bundle:
            return json.loads(bundle.read("export.json"))
    with tarfile.open(path) as bundle:
        member = bundle.extractfile("export.json")
        assert member is not None
        return json.load(io.TextIOWrapper(member, encoding="utf-8"))


def essentials(items: list[dict[str, Any]], keys: tuple[str, ...]) -> list[tuple]:
    return sorted(tuple(str(item.get(key)) for key in keys) for item in items)


@pytest.mark.parametrize(
    ("path", "version_url", "concepts", "mappings"), CASES, ids=["CIEL-v1-tgz", "DemoSource-v2-zip"]
)
def test_an_imported_file_exports_the_same_concepts_and_mappings(
    path, version_url, concepts, mappings, staff_client, anon_client, redis_conn, s3_bucket
) -> None:
    import_file(path)
    export_url = f"{version_url}export/"
    assert staff_client.post(export_url).status_code == 202
    work()
    response = staff_client.get(export_url)
    assert response.status_code == 303
    archive = fetch_archive(response["Location"]).content
    exported = parsed(archive)

    original = read_fixture(path)
    assert (len(exported["concepts"]), len(exported["mappings"])) == (concepts, mappings)
    assert essentials(exported["concepts"], CONCEPT_KEYS) == essentials(original["concepts"], CONCEPT_KEYS)
    assert essentials(exported["mappings"], MAPPING_KEYS) == essentials(original["mappings"], MAPPING_KEYS)

    _, _, _, repo, version_id = version_url.strip("/").split("/")
    version = RepositoryVersion.objects.get(repository__mnemonic=repo, version=version_id)
    assert exported == orjson.loads(b"".join(stream_version(version, EVERYTHING)))
    read_api = staff_client.get(f"{version_url}?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0")
    assert exported == orjson.loads(content_of(read_api))
