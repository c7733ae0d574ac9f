"""OCL checksums: every item's and version's, recomputed by a client with ocldev from what it was served.

The figures are never hard-coded: each test computes them with ``ocldev.checksum.Checksum`` from
the JSON the API answered, as any OCL client can, and compares with what the server stored.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command
from django.db import connection
from ocldev.checksum import Checksum

from repos.importers import import_file
from repos.models import ConceptVersion, MappingVersion, RepositoryVersion
from tests.factories import add_concept, make_source, make_version

FIXTURES = Path(__file__).parent / "fixtures"
CIEL = (FIXTURES / "ocl-v1-CIEL-subset-2015.tgz", "/orgs/CIEL/sources/CIEL/v2015-06-22/", 1946, 4897)
DEMO = (FIXTURES / "ocl-v2-DemoSource_v1.0.20230526120030.zip", "/orgs/DemoOrg/sources/DemoSource/v1.0/", 23, 22)
# A collection takes the importer's other road (staged rows, merged): it must store them too.
REFAPP = (
    FIXTURES / "ocl-v1-collection-refapp.json",
    "/orgs/openmrs/collections/reference-application/v1.0-beta.2/",
    2,
    0,
)
RESOURCE = {"concepts": "concept", "mappings": "mapping"}


def body(response) -> dict | list:
    return orjson.loads(b"".join(response.streaming_content) if response.streaming else response.content)


def ocldev_checksums(kind: str, item: dict) -> dict[str, str]:
    """What an OCL client computes from an item it received."""
    item = {key: value for key, value in item.items() if key != "checksums"}
    return {name: Checksum(RESOURCE[kind], item, name).generate() for name in ("standard", "smart")}


def served_items(client, version_url: str) -> dict[str, list[dict]]:
    url = f"{version_url}?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"
    data = body(client.get(url))
    return {"concepts": data["concepts"], "mappings": data["mappings"]}


def listing(client, version_url: str) -> dict[str, list[dict]]:
    response = client.get(f"{version_url}checksums/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return body(response)


def oclapi2_page_checksum(values: list[str]) -> str:
    """How oclapi2 combines a page of item checksums into its X-OCL-API-*-CHECKSUM header."""
    return Checksum(None, values).generate() if len(values) > 1 else values[0]


@pytest.mark.parametrize(
    ("path", "version_url", "concepts", "mappings"), [CIEL, DEMO, REFAPP], ids=["CIEL", "v2", "refapp"]
)
def test_the_listing_gives_every_items_checksums_as_ocldev_computes_them_from_the_served_json(
    db, anon_client, path, version_url, concepts, mappings
):
    import_file(path)
    served = served_items(anon_client, version_url)
    listed = listing(anon_client, version_url)
    assert (len(listed["concepts"]), len(listed["mappings"])) == (concepts, mappings)
    for kind in ("concepts", "mappings"):
        expected = {(item["id"], item["version"]): ocldev_checksums(kind, item) for item in served[kind]}
        got = {(entry["id"], entry["version"]): entry["checksums"] for entry in listed[kind]}
        assert got == expected


def test_the_export_body_and_limit_0_read_carry_no_checksums_unless_asked(db, anon_client):
    import_file(DEMO[0])
    raw = b"".join(anon_client.get(f"{DEMO[1]}?includeConcepts=true&includeMappings=true&limit=0").streaming_content)
    assert b'"checksums"' not in raw


def test_a_versions_checksums_combine_its_items_as_oclapi2_combines_a_page(db, anon_client):
    import_file(CIEL[0])
    version_url = CIEL[1]
    served = served_items(anon_client, version_url)
    items = [("concepts", item) for item in served["concepts"]] + [("mappings", item) for item in served["mappings"]]
    computed = [ocldev_checksums(kind, item) for kind, item in items]
    expected = {name: oclapi2_page_checksum([c[name] for c in computed]) for name in ("standard", "smart")}

    detail = body(anon_client.get(f"{version_url}?checksums=true"))
    assert detail["checksums"] == expected
    stored = RepositoryVersion.objects.get(version="v2015-06-22")
    assert (stored.checksum_standard, stored.checksum_smart) == (expected["standard"], expected["smart"])
    listed = body(anon_client.get("/orgs/CIEL/sources/CIEL/versions/?checksums=true"))
    by_id = {entry["id"]: entry for entry in listed}
    assert by_id["v2015-06-22"]["checksums"] == expected
    assert by_id["HEAD"]["checksums"] == expected  # HEAD holds the same items, computed afresh
    assert "checksums" not in body(anon_client.get(version_url))


def test_two_versions_differ_in_checksums_exactly_when_their_items_do(db, anon_client, org):
    source = make_source(org, "CIEL")
    add_concept(source, "1", display_name="Yes")
    make_version(source, "v1")
    make_version(source, "v2")
    add_concept(source, "1", display_name="Yes!")
    make_version(source, "v3")
    sums = {
        v: body(anon_client.get(f"/orgs/CIEL/sources/CIEL/{v}/?checksums=true"))["checksums"]
        for v in ("v1", "v2", "v3")
    }
    assert sums["v1"] == sums["v2"]
    assert sums["v1"]["standard"] != sums["v3"]["standard"]
    assert sums["v1"]["smart"] != sums["v3"]["smart"]  # the fully specified name changed


def test_items_at_their_own_urls_carry_checksums_when_asked(db, anon_client):
    import_file(DEMO[0])
    listed = listing(anon_client, DEMO[1])
    for kind in ("concepts", "mappings"):
        entry = listed[kind][0]
        detail = body(anon_client.get(f"{DEMO[1]}{kind}/{entry['id']}/?checksums=true"))
        assert detail["checksums"] == entry["checksums"] == ocldev_checksums(kind, detail)
        page = body(anon_client.get(f"{DEMO[1]}{kind}/?checksums=true&limit=0"))
        assert len(page) == len(listed[kind])
        assert all(item["checksums"] == ocldev_checksums(kind, item) for item in page)
        assert "checksums" not in body(anon_client.get(f"{DEMO[1]}{kind}/{entry['id']}/"))


def test_the_backfill_stores_what_the_import_would_have_and_the_listing_never_waits_for_it(db, anon_client):
    import_file(DEMO[0])
    before = listing(anon_client, DEMO[1])
    with connection.cursor() as cursor:
        for table in (ConceptVersion._meta.db_table, MappingVersion._meta.db_table):
            cursor.execute(f"UPDATE {table} SET checksum_standard = NULL, checksum_smart = NULL")
    assert listing(anon_client, DEMO[1]) == before  # computed from the renderings meanwhile
    call_command("backfill_checksums", "--batch-size", "7")
    assert not ConceptVersion.objects.filter(checksum_standard__isnull=True).exists()
    assert not MappingVersion.objects.filter(checksum_smart__isnull=True).exists()
    assert listing(anon_client, DEMO[1]) == before
    call_command("backfill_checksums")  # nothing left: a second run is a no-op


def test_a_reimport_computes_checksums_for_changed_items_only_where_they_changed(db, anon_client, tmp_path):
    import_file(DEMO[0])
    first = {e["id"]: e for e in listing(anon_client, "/orgs/DemoOrg/sources/DemoSource/HEAD/")["concepts"]}
    with zipfile.ZipFile(DEMO[0]) as bundle:
        data = orjson.loads(bundle.read("export.json"))
    changed = data["concepts"][0]
    changed["names"][0]["name"] += " (changed)"
    changed["version"] = changed["uuid"] = "changed-uuid"
    data["id"] = "v1.1"
    path = tmp_path / "DemoSource_v1.1.20230601000000.json"
    path.write_bytes(orjson.dumps(data))
    import_file(path)
    second_url = "/orgs/DemoOrg/sources/DemoSource/v1.1/"
    second = {e["id"]: e for e in listing(anon_client, second_url)["concepts"]}
    assert second[changed["id"]]["checksums"] != first[changed["id"]]["checksums"]
    assert {k: v for k, v in second.items() if k != changed["id"]} == {
        k: v for k, v in first.items() if k != changed["id"]
    }
    served = {item["id"]: item for item in served_items(anon_client, second_url)["concepts"]}
    assert second[changed["id"]]["checksums"] == ocldev_checksums("concepts", served[changed["id"]])


def test_ocls_name_type_rewrite_moves_most_of_the_ciel_subsets_standard_checksums(db, anon_client):
    """oclapi2's import takes a null name_type as "ConceptName" and a null description_type as
    "ConceptDescription" (the locale's ``type``) before computing; the README says how many
    standard checksums of the CIEL subset that moves (smart ones read only fully specified names,
    so none of them move)."""
    import_file(CIEL[0])
    moved_standard = moved_smart = 0
    for item in served_items(anon_client, CIEL[1])["concepts"]:
        rewritten = {
            **item,
            "names": [{**name, "name_type": name["name_type"] or "ConceptName"} for name in item["names"]],
            "descriptions": [
                {**text, "description_type": text["description_type"] or "ConceptDescription"}
                for text in item["descriptions"]
            ],
        }
        before, after = ocldev_checksums("concepts", item), ocldev_checksums("concepts", rewritten)
        moved_standard += before["standard"] != after["standard"]
        moved_smart += before["smart"] != after["smart"]
    assert (moved_standard, moved_smart) == (1771, 0)


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", "/orgs/CIEL/sources/CIEL/v9/checksums/", 404),
        ("get", "/orgs/CIEL/sources/Nope/HEAD/checksums/", 404),
        ("get", "/orgs/Nope/sources/CIEL/HEAD/checksums/", 404),
        ("post", "/orgs/CIEL/sources/CIEL/HEAD/checksums/", 405),
        ("get", "/orgs/CIEL/sources/CIEL/v1/?checksums=maybe", 400),
        ("get", "/orgs/CIEL/sources/CIEL/versions/?checksums=2", 400),
        ("get", "/orgs/CIEL/sources/CIEL/v1/concepts/1/?checksums=yes%20please", 400),
        ("get", "/orgs/CIEL/sources/CIEL/v1/concepts/?checksums=", 400),
    ],
)
def test_bad_requests_get_json_errors(db, anon_client, org, method, url, status):
    source = make_source(org, "CIEL")
    add_concept(source, "1")
    make_version(source, "v1")
    response = getattr(anon_client, method)(url)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in body(response)


def test_a_private_repositorys_listing_is_404_to_strangers(db, anon_client, alice_client, org):
    source = make_source(org, "Secret", public_access="None")
    add_concept(source, "1")
    make_version(source, "v1")
    assert anon_client.get("/orgs/CIEL/sources/Secret/v1/checksums/").status_code == 404
    assert [e["id"] for e in body(alice_client.get("/orgs/CIEL/sources/Secret/v1/checksums/"))["concepts"]] == ["1"]
