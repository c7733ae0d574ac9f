"""Importing real OCL export files: what the file says comes back out of the representation."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import connection

from repos.importers import CREATED, UNCHANGED, ImportFileError, import_file
from repos.models import ConceptVersion, MappingVersion, Organization, Repository, RepositoryVersion, snapshot_head
from repos.representation.body import stream_version
from repos.representation.items import EVERYTHING
from repos.representation.shapes import descriptions_json, names_json

FIXTURES = Path(__file__).parent / "fixtures"
CIEL = FIXTURES / "ocl-v1-CIEL-subset-2015.tgz"
CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"
REFAPP = FIXTURES / "ocl-v1-collection-refapp.json"
DEMO = FIXTURES / "ocl-v2-DemoSource_v1.0.20230526120030.zip"

EXPECTED = {
    CIEL: ("/orgs/CIEL/sources/CIEL/", "v2015-06-22", 1946, 4897),
    CIELTEST: ("/orgs/CIELTEST/sources/CIELTEST/", "v2015-03-13", 100, 100),
    REFAPP: ("/orgs/openmrs/collections/reference-application/", "v1.0-beta.2", 2, 0),
    DEMO: ("/orgs/DemoOrg/sources/DemoSource/", "v1.0", 23, 22),
}
CONCEPT_KEYS = ("id", "uuid", "version", "external_id", "retired", "datatype", "concept_class", "display_name",
                "display_locale", "source_url", "url", "version_url")  # fmt: skip
MAPPING_KEYS = ("id", "external_id", "retired", "map_type", "from_concept_url", "from_concept_code",
                "to_concept_url", "to_concept_code", "from_source_url", "to_source_url", "url")  # fmt: skip


def read_file(path: Path) -> dict[str, Any]:
    """The fixture's export.json, read whole (fine for the tests' small files)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("export.json"))
    if path.suffix == ".tgz":
        with tarfile.open(path) as archive:
            return json.loads(archive.extractfile("export.json").read())
    return json.loads(path.read_text())


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def exported(version: RepositoryVersion) -> dict[str, Any]:
    return orjson.loads(b"".join(stream_version(version, EVERYTHING)))


def get_version(url: str, version_id: str) -> RepositoryVersion:
    for repository in Repository.objects.all():
        if repository.url == url:
            return repository.versions.get(version=version_id)
    raise AssertionError(f"no repository {url}")


def same_instant(ours: str, theirs: str) -> bool:
    """Naive file timestamps are UTC; ours always say Z."""
    theirs_aware = theirs if theirs.endswith("Z") or "+" in theirs[10:] else theirs + "Z"
    return datetime.fromisoformat(ours) == datetime.fromisoformat(theirs_aware)


def assert_round_trip(data: dict[str, Any], body: dict[str, Any], exact_versions: bool = True) -> None:
    assert len(body["concepts"]) == len(data.get("concepts") or [])
    assert len(body["mappings"]) == len(data.get("mappings") or [])
    ours = {item["id"]: item for item in body["concepts"]}
    for concept in data.get("concepts") or []:
        mine = ours[concept["id"]]
        for key in CONCEPT_KEYS:
            if key in concept:
                assert mine[key] == concept[key], (concept["id"], key)
        assert mine["names"] == orjson.loads(names_json(concept["names"]))
        assert mine["descriptions"] == orjson.loads(descriptions_json(concept["descriptions"]))
        assert mine["extras"] == (concept["extras"] or {})
        assert same_instant(mine["updated_on"], concept["updated_on"])
    ours = {item["id"]: item for item in body["mappings"]}
    for mapping in data.get("mappings") or []:
        mine = ours[mapping["id"]]
        for key in MAPPING_KEYS:
            assert mine[key] == mapping.get(key), (mapping["id"], key)
        assert mine["extras"] == (mapping["extras"] or {})
        if exact_versions:
            assert mine["version"] == mapping.get("version", mapping["id"])
        assert same_instant(mine["updated_on"], mapping.get("updated_on") or mapping["updated_at"])


def database_state() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in ("repos_version_concepts", "repos_version_mappings", "auth_user"):
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    for model in (Organization, Repository, RepositoryVersion, ConceptVersion, MappingVersion):
        counts[model.__name__] = model.objects.count()
    counts["latest"] = ConceptVersion.objects.filter(is_latest_version=True).count()
    return counts


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda path: path.name)
def test_it_imports_each_fixture_and_reads_every_item_back(path: Path) -> None:
    url, version_id, concepts, mappings = EXPECTED[path]
    summary = import_file(path)
    assert (summary.repository, summary.version, summary.status) == (url, version_id, CREATED)
    assert (summary.concepts, summary.mappings) == (concepts, mappings)
    version = get_version(url, version_id)
    data = read_file(path)
    body = exported(version)
    assert_round_trip(data, body)
    assert version.last_updated == version.compute_last_updated()
    head = version.repository.head()
    assert (head.concepts.count(), head.mappings.count()) == (concepts, mappings)


@pytest.mark.django_db
def test_it_keeps_the_version_metadata_of_a_version_file() -> None:
    import_file(DEMO)
    data = read_file(DEMO)
    body = exported(get_version("/orgs/DemoOrg/sources/DemoSource/", "v1.0"))
    for key in ("type", "uuid", "id", "description", "released", "url", "version_url", "owner", "owner_type"):
        assert body[key] == data[key], key
    assert body["source"]["description"] == data["source"]["description"]
    assert body["source"]["uuid"] == data["source"]["uuid"]


def memberships() -> dict[str, set[int]]:
    return {
        str(version): set(version.concepts.values_list("pk", flat=True))
        | {-pk for pk in version.mappings.values_list("pk", flat=True)}
        for version in RepositoryVersion.objects.all()
    }


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda path: path.name)
def test_it_changes_nothing_when_the_same_file_is_imported_again(path: Path) -> None:
    import_file(path)
    before = database_state()
    members = memberships()
    summary = import_file(path)
    assert summary.status == UNCHANGED
    assert (summary.new_concepts, summary.new_mappings) == (0, 0)
    assert database_state() == before
    assert memberships() == members


@pytest.mark.django_db
def test_it_adds_versions_only_for_changed_items_of_a_newer_file(tmp_path: Path) -> None:
    import_file(DEMO)
    data = read_file(DEMO)
    data["id"] = data["version"] = "v1.1"
    changed = data["concepts"][0]
    old_uuid = changed["uuid"]
    changed["names"][0]["name"] = "Renamed"
    changed["uuid"] = changed["version"] = "9999001"
    changed["version_url"] = changed["url"] + "9999001/"
    dropped = data["concepts"].pop(1)
    mapping = data["mappings"][0]
    mapping["map_type"] = "SAME-AS"  # same uuid, other content: must not collide with the old row
    newer = write_json(tmp_path / "DemoSource_v1.1.20230601000000.json", data)

    summary = import_file(newer)
    assert summary.status == CREATED
    assert (summary.new_concepts, summary.new_mappings) == (1, 1)
    assert ConceptVersion.objects.count() == 24
    assert MappingVersion.objects.count() == 23
    rows = ConceptVersion.objects.filter(mnemonic=changed["id"]).order_by("pk")
    assert [(row.uuid, row.is_latest_version) for row in rows] == [(old_uuid, False), ("9999001", True)]
    assert rows[1].previous_version_uuid == old_uuid
    assert list(
        MappingVersion.objects.filter(mnemonic=mapping["id"]).order_by("pk").values_list("is_latest_version", flat=True)
    ) == [
        False,
        True,
    ]
    new_version = get_version("/orgs/DemoOrg/sources/DemoSource/", "v1.1")
    # The changed mapping kept its uuid in the file; its new row needed a distinct one.
    assert_round_trip(data, exported(new_version), exact_versions=False)
    old_body = exported(get_version("/orgs/DemoOrg/sources/DemoSource/", "v1.0"))
    assert {c["uuid"] for c in old_body["concepts"]} >= {old_uuid, dropped["uuid"]}
    head = new_version.repository.head()
    head_uuids = set(head.concepts.values_list("uuid", flat=True))
    assert "9999001" in head_uuids and old_uuid not in head_uuids
    # The newest version is a snapshot of HEAD: an item missing from it has left HEAD.
    assert dropped["uuid"] not in head_uuids
    assert head.concepts.count() == 22


@pytest.mark.django_db
def test_it_refuses_an_existing_version_with_other_content(tmp_path: Path) -> None:
    import_file(DEMO)
    before = database_state()
    data = read_file(DEMO)
    data["concepts"][0]["names"][0]["name"] = "Changed"
    with pytest.raises(ImportFileError, match="already exists with other content"):
        import_file(write_json(tmp_path / "demo.json", data))
    assert database_state() == before


@pytest.mark.django_db
def test_a_first_import_refuses_an_existing_empty_version_of_the_same_id() -> None:
    org = Organization.objects.create(mnemonic="DemoOrg")
    source = Repository.objects.create(repo_type=Repository.SOURCES, owner_org=org, mnemonic="DemoSource")
    snapshot_head(source, "v1.0")  # empty: the file's items would be this source's first rows
    before = database_state()
    with pytest.raises(ImportFileError, match="already exists with other content"):
        import_file(DEMO)
    assert database_state() == before


@pytest.mark.django_db
def test_it_resolves_the_collection_concepts_into_their_source() -> None:
    summary = import_file(REFAPP)
    assert summary.placeholders == ["/orgs/CIEL/sources/CIEL/"]
    version = get_version("/orgs/openmrs/collections/reference-application/", "v1.0-beta.2")
    data = read_file(REFAPP)
    assert version.references == data["references"] == version.repository.head().references
    assert version.description == data["description"]
    assert set(version.concepts.values_list("source__mnemonic", "mnemonic")) == {("CIEL", "1002"), ("CIEL", "159947")}
    # The placeholder source holds the rows, but none of its versions do: it has no content of its own.
    assert get_version("/orgs/CIEL/sources/CIEL/", "HEAD").concepts.count() == 0
    body = exported(version)
    assert body["references"] == data["references"]
    assert body["collection"]["collection_type"] == "Subset"


def membership_of(repository: Repository) -> dict[str, tuple[set[int], set[int]]]:
    return {
        version.version: (
            set(version.concepts.values_list("pk", flat=True)),
            set(version.mappings.values_list("pk", flat=True)),
        )
        for version in repository.versions.all()
    }


@pytest.mark.django_db
def test_importing_a_collection_never_changes_a_sources_head_or_versions() -> None:
    import_file(CIEL)
    ciel = Repository.objects.get(mnemonic="CIEL")
    before = membership_of(ciel)
    assert not ciel.head().concepts.filter(mnemonic="159947").exists()  # the subset lacks it
    import_file(REFAPP)
    assert Repository.objects.filter(mnemonic="CIEL").count() == 1
    assert membership_of(ciel) == before
    # A version made from CIEL's HEAD afterwards holds the source's 1,946 concepts, not 1,947.
    later = snapshot_head(ciel, "after-refapp")
    assert (later.concepts.count(), later.mappings.count()) == (1946, 4897)
    assert_round_trip(
        read_file(REFAPP), exported(get_version("/orgs/openmrs/collections/reference-application/", "v1.0-beta.2"))
    )


@pytest.mark.django_db
def test_a_source_imported_after_a_collection_holds_exactly_its_own_file() -> None:
    import_file(REFAPP)  # creates CIEL as a placeholder holding the two rows
    import_file(CIEL)
    head = get_version("/orgs/CIEL/sources/CIEL/", "HEAD")
    assert (head.concepts.count(), head.mappings.count()) == (1946, 4897)
    assert not head.concepts.filter(mnemonic="159947").exists()


@pytest.mark.django_db
def test_it_imports_a_user_owned_repository(tmp_path: Path) -> None:
    text = json.dumps(read_file(DEMO)).replace("/orgs/DemoOrg/", "/users/dora/")
    data = json.loads(text.replace('"owner": "DemoOrg"', '"owner": "dora"'))
    data["owner_type"] = data["source"]["owner_type"] = "User"
    for item in data["concepts"] + data["mappings"]:
        item["owner_type"] = "User"
    summary = import_file(write_json(tmp_path / "dora.json", data))
    assert summary.repository == "/users/dora/sources/DemoSource/"
    version = get_version("/users/dora/sources/DemoSource/", "v1.0")
    assert version.repository.owner_user.username == "dora"
    assert_round_trip(data, exported(version))


@pytest.mark.django_db
def test_it_takes_the_owner_type_from_the_option(tmp_path: Path) -> None:
    summary = import_file(CIELTEST, owner_type="users")
    assert summary.repository == "/users/CIELTEST/sources/CIELTEST/"


@pytest.mark.django_db
def test_it_names_a_plain_source_version_from_the_file_name_or_the_option(tmp_path: Path) -> None:
    named = tmp_path / "CIELTEST_v2015-08-13.20150813141100.zip"
    shutil.copy(CIELTEST, named)
    assert import_file(named).version == "v2015-08-13"
    assert import_file(CIELTEST, version="v-option").version == "v-option"


@pytest.mark.django_db
def test_it_reads_metadata_that_follows_the_items(tmp_path: Path) -> None:
    data = read_file(CIELTEST)
    reordered = {"concepts": data["concepts"], "mappings": data["mappings"]}
    reordered.update({key: value for key, value in data.items() if key not in reordered})
    summary = import_file(write_json(tmp_path / "late.json", reordered))
    assert (summary.repository, summary.concepts, summary.mappings) == ("/orgs/CIELTEST/sources/CIELTEST/", 100, 100)
    assert Repository.objects.get().full_name == data["full_name"]


# --- damaged files ----------------------------------------------------------------------------


def truncated_copy(path: Path, tmp_path: Path, fraction: float) -> Path:
    raw = path.read_bytes()
    target = tmp_path / path.name
    target.write_bytes(raw[: int(len(raw) * fraction)])
    return target


def tgz_with(tmp_path: Path, name: str, payload: bytes) -> Path:
    target = tmp_path / "other.tgz"
    with tarfile.open(target, "w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return target


def bad_json(tmp_path: Path) -> Path:
    """Valid metadata, then garbage inside the concepts array."""
    target = tmp_path / "bad.json"
    target.write_text(
        '{"type": "Source", "id": "X", "owner": "O", "owner_type": "Organization", "concepts": [{"id": 1},, ]}'
    )
    return target


DAMAGED_CASES = {
    "truncated-tgz": (lambda tmp: truncated_copy(CIEL, tmp, 0.6), r"ocl-v1-CIEL-subset-2015.tgz: damaged or truncated"),
    "truncated-zip": (
        lambda tmp: truncated_copy(CIELTEST, tmp, 0.7),
        r"ocl-v1-CIELTEST-2015.zip: damaged or truncated",
    ),
    "truncated-json": (lambda tmp: truncated_copy(REFAPP, tmp, 0.8), r"ocl-v1-collection-refapp.json: damaged"),
    "bad-json": (lambda tmp: bad_json(tmp), r"bad.json: damaged"),
    "no-member": (lambda tmp: tgz_with(tmp, "readme.txt", b"hello"), r"no export.json member"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(DAMAGED_CASES))
def test_it_rejects_a_damaged_file_and_leaves_the_database_as_it_was(case: str, tmp_path: Path) -> None:
    import_file(DEMO)
    before = database_state()
    make, message = DAMAGED_CASES[case]
    with pytest.raises(ImportFileError, match=message):
        import_file(make(tmp_path))
    assert database_state() == before


@pytest.mark.django_db
def test_it_names_the_item_when_one_has_no_id(tmp_path: Path) -> None:
    data = read_file(CIELTEST)
    del data["mappings"][42]["id"]
    before = database_state()
    with pytest.raises(ImportFileError, match=r"noid.json: mappings item #42 has no 'id'"):
        import_file(write_json(tmp_path / "noid.json", data))
    assert database_state() == before


@pytest.mark.django_db
def test_it_rejects_an_unknown_export_type(tmp_path: Path) -> None:
    data = read_file(DEMO) | {"type": "Concept Bundle"}
    with pytest.raises(ImportFileError, match=r"odd.json: unknown export type 'Concept Bundle'"):
        import_file(write_json(tmp_path / "odd.json", data))
    assert Repository.objects.count() == 0


@pytest.mark.django_db
def test_it_names_a_truncated_gzip_position(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=r"after (concepts|mappings) item #\d+"):
        import_file(truncated_copy(CIEL, tmp_path, 0.5))


# --- repeated items ---------------------------------------------------------------------------


def with_repeated_concept(tmp_path: Path, data: dict[str, Any], name: str) -> Path:
    """The file with its 6th concept listed again, as another version of the same id."""
    again = json.loads(json.dumps(data["concepts"][5]))
    again["uuid"] = again["version"] = "repeated-1"
    again["version_url"] = again["url"] + "repeated-1/"
    data["concepts"].insert(40, again)
    return write_json(tmp_path / name, data)


@pytest.mark.django_db
def test_a_first_import_refuses_a_file_that_lists_an_item_twice(tmp_path: Path) -> None:
    data = read_file(CIEL)
    repeated = data["concepts"][5]["id"]
    path = with_repeated_concept(tmp_path, data, "CIEL_v2015-06-22.20150622000000.json")
    before = database_state()
    with pytest.raises(
        ImportFileError, match=rf"lists concept {repeated!r} of /orgs/CIEL/sources/CIEL/ twice, with other content"
    ):
        import_file(path)
    assert database_state() == before


@pytest.mark.django_db
def test_a_later_import_refuses_a_file_that_lists_an_item_twice(tmp_path: Path) -> None:
    import_file(DEMO)
    before = database_state()
    data = read_file(DEMO)
    data["id"] = data["version"] = "v1.1"
    repeated = data["concepts"][5]["id"]
    with pytest.raises(
        ImportFileError, match=rf"lists concept {repeated!r} of /orgs/DemoOrg/sources/DemoSource/ twice"
    ):
        import_file(with_repeated_concept(tmp_path, data, "DemoSource_v1.1.20230601000000.json"))
    assert database_state() == before


@pytest.mark.django_db(transaction=True)
def test_a_large_import_leaves_postgresql_knowing_the_sizes_of_the_tables_it_grew(monkeypatch) -> None:
    from repos.importers import loader

    def planned_rows(table: str) -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
            return cursor.fetchone()[0]

    monkeypatch.setattr(loader, "ANALYZE_AFTER_ITEMS", 1000)  # the CIEL subset's 6,843 items count as large
    import_file(CIEL)
    assert planned_rows("repos_mappingversion") == MappingVersion.objects.count() == 4897
    assert planned_rows("repos_conceptversion") == ConceptVersion.objects.count() == 1946
    assert planned_rows("repos_version_mappings") == 2 * 4897  # the version's rows and HEAD's
