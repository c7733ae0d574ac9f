"""HEAD can lose items, and a client that asks learns what left it since an instant.

- A collection's references survive a round trip through this service's own export (which
  writes them after the items), so a mirror's copy of a version has the upstream's bytes.
- Importing a version newer than every other makes HEAD hold exactly its items (concepts,
  mappings and references agree); an older version imported late leaves HEAD alone.
- A diff's ``removed`` list takes items out of HEAD, unless the diff delivers them again.
- ``?includeRemoved=true`` on HEAD adds a ``removed`` key; without it the bytes are as before.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from read_cache.triggers import watched_tables
from repos.importers import ImportFileError, import_file
from repos.models import HeadRemoval, Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.items import EVERYTHING
from tests.conftest import FIXTURES

REFAPP = FIXTURES / "ocl-v1-collection-refapp.json"
CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"
COLLECTION = "/orgs/openmrs/collections/reference-application/"
SOURCE = "/orgs/CIELTEST/sources/CIELTEST/"
CIEL_CONCEPT = "/orgs/CIEL/sources/CIEL/concepts/"
EVERYTHING_QUERY = "?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"


def refapp() -> dict[str, Any]:
    return json.loads(REFAPP.read_text())


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def beta3(tmp_path: Path) -> Path:
    """The refapp collection's next version: concept 159947 and its reference removed."""
    data = refapp()
    data["id"] = "v1.0-beta.3"
    data["version_url"] = f"{COLLECTION}v1.0-beta.3/"
    data["created_on"] = data["updated_on"] = "2016-12-01T10:00:00"
    data["concepts"] = [concept for concept in data["concepts"] if concept["id"] != "159947"]
    data["references"] = [ref for ref in data["references"] if not ref["expression"].endswith("/159947/")]
    return write(tmp_path / "refapp-beta3.json", data)


def version(url: str, version_id: str) -> RepositoryVersion:
    return next(r for r in Repository.objects.all() if r.url == url).versions.get(version=version_id)


def body(version: RepositoryVersion) -> bytes:
    return b"".join(stream_version(version, EVERYTHING))


def head_state(url: str) -> tuple[set[str], set[str], list[str]]:
    head = version(url, "HEAD")
    return (
        set(head.concepts.values_list("mnemonic", flat=True)),
        set(head.mappings.values_list("mnemonic", flat=True)),
        [reference["expression"] for reference in head.references],
    )


# --- references after the items ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_collection_exported_here_and_imported_again_keeps_its_references_and_bytes(tmp_path: Path) -> None:
    import_file(REFAPP)
    exported = body(version(COLLECTION, "v1.0-beta.2"))
    assert exported.index(b'"references"') > exported.index(b'"concepts"')  # the order that lost them
    (tmp_path / "copy.json").write_bytes(exported)
    Repository.objects.filter(mnemonic="reference-application").delete()

    import_file(tmp_path / "copy.json")

    again = version(COLLECTION, "v1.0-beta.2")
    assert len(again.references) == 2
    assert len(version(COLLECTION, "HEAD").references) == 2
    assert hashlib.sha256(body(again)).hexdigest() == hashlib.sha256(exported).hexdigest()


@pytest.mark.django_db
def test_metadata_after_the_items_other_than_references_is_not_kept(tmp_path: Path) -> None:
    data = refapp()
    references = data.pop("references")
    data["references"] = references  # after the items now
    data["description"] = "first"
    import_file(write(tmp_path / "refapp.json", data))
    assert version(COLLECTION, "v1.0-beta.2").references == references


# --- a later version's import ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_later_collection_version_leaves_head_agreeing_with_it(tmp_path: Path) -> None:
    import_file(REFAPP)
    assert head_state(COLLECTION)[0] == {"1002", "159947"}

    summary = import_file(beta3(tmp_path))

    assert summary.removed == 1
    assert head_state(COLLECTION) == ({"1002"}, set(), [f"{CIEL_CONCEPT}1002/"])
    removal = HeadRemoval.objects.get()
    assert (removal.kind, removal.mnemonic, removal.url) == ("concepts", "159947", f"{CIEL_CONCEPT}159947/")
    row = next(c for c in refapp()["concepts"] if c["id"] == "159947")
    assert removal.version_url == row["version_url"]
    # The earlier version is immutable: it still holds both.
    assert version(COLLECTION, "v1.0-beta.2").concepts.count() == 2


@pytest.mark.django_db
def test_an_older_version_imported_after_a_newer_one_takes_nothing_out_of_head(tmp_path: Path) -> None:
    import_file(beta3(tmp_path))
    import_file(REFAPP)  # v1.0-beta.2, created before beta.3
    assert head_state(COLLECTION)[0] == {"1002", "159947"}
    assert not HeadRemoval.objects.exists()


def cieltest(tmp_path: Path, name: str, change) -> Path:
    data = json.loads(zipfile.ZipFile(CIELTEST).read("export.json"))
    change(data)
    return write(tmp_path / name, data)


@pytest.mark.django_db
def test_a_later_source_version_takes_its_missing_items_out_of_head_and_keeps_retired_ones(tmp_path: Path) -> None:
    import_file(CIELTEST)
    first = json.loads(zipfile.ZipFile(CIELTEST).read("export.json"))
    gone_concept, gone_mapping, retired = first["concepts"][0]["id"], first["mappings"][0]["id"], first["concepts"][1]

    def change(data: dict[str, Any]) -> None:
        data["concepts"] = data["concepts"][1:]
        data["mappings"] = data["mappings"][1:]
        data["concepts"][0]["retired"] = True
        data["concepts"][0]["updated_on"] = "2016-01-04T10:00:00"

    summary = import_file(cieltest(tmp_path, "later.json", change), version="v2016")

    assert summary.removed == 2
    concepts, mappings, _ = head_state(SOURCE)
    assert gone_concept not in concepts and retired["id"] in concepts and len(concepts) == 99
    assert gone_mapping not in mappings and len(mappings) == 99
    assert set(HeadRemoval.objects.values_list("kind", "mnemonic")) == {
        ("concepts", gone_concept),
        ("mappings", gone_mapping),
    }


# --- a diff's removed list ---------------------------------------------------------------------


def diff(tmp_path: Path, removed: list[Any], concepts: list[dict] | None = None) -> Path:
    """A read of the collection's HEAD changes (the repository, its items, references, removed)."""
    data = dict(refapp()["collection"])
    data["concepts"] = concepts or []
    data["mappings"] = []
    data["removed"] = removed
    return write(tmp_path / "diff.json", data)


def removed_entry(concept: str) -> dict[str, str]:
    return {"type": "Concept", "id": concept, "url": f"{CIEL_CONCEPT}{concept}/"}


@pytest.mark.django_db
def test_a_diff_takes_the_items_it_lists_as_removed_out_of_head(tmp_path: Path) -> None:
    import_file(REFAPP)
    summary = import_file(diff(tmp_path, [removed_entry("159947")]), partial=True)
    assert (summary.status, summary.removed, summary.lists_removed) == ("changed", 1, True)
    assert head_state(COLLECTION)[0] == {"1002"}
    assert HeadRemoval.objects.get().mnemonic == "159947"
    assert import_file(diff(tmp_path, [removed_entry("159947")]), partial=True).status == "unchanged"


@pytest.mark.django_db
def test_a_diff_that_removes_and_delivers_an_item_keeps_it(tmp_path: Path) -> None:
    import_file(REFAPP)
    delivered = [copy.deepcopy(c) for c in refapp()["concepts"] if c["id"] == "1002"]
    import_file(diff(tmp_path, [removed_entry("1002"), removed_entry("159947")], delivered), partial=True)
    assert head_state(COLLECTION)[0] == {"1002"}


@pytest.mark.django_db
def test_a_removed_item_of_a_source_not_held_here_is_skipped(tmp_path: Path) -> None:
    import_file(REFAPP)
    entry = {"type": "Concept", "id": "1", "url": "/orgs/NOWHERE/sources/X/concepts/1/"}
    import_file(diff(tmp_path, [entry]), partial=True)
    assert head_state(COLLECTION)[0] == {"1002", "159947"}
    assert not Repository.objects.filter(mnemonic="X").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "entry", [{"type": "Concept"}, "159947", {"type": "Mapping", "url": f"{CIEL_CONCEPT}1/"}, {"type": "X", "url": ""}]
)
def test_a_malformed_removed_entry_refuses_the_diff_and_changes_nothing(tmp_path: Path, entry: Any) -> None:
    import_file(REFAPP)
    with pytest.raises(ImportFileError, match="removed entry #1 is not"):
        import_file(diff(tmp_path, [removed_entry("159947"), entry]), partial=True)
    assert head_state(COLLECTION)[0] == {"1002", "159947"}


def members_diff(tmp_path: Path, members: list[Any]) -> Path:
    path = diff(tmp_path, [])
    data = json.loads(path.read_text())
    del data["removed"]
    data["members"] = members
    return write(path, data)


@pytest.mark.django_db
def test_a_diff_listing_heads_members_takes_every_other_item_out(tmp_path: Path) -> None:
    import_file(REFAPP)
    # OCL v2 lists a collection's items by their version URLs; a type is optional.
    pinned = next(c for c in refapp()["concepts"] if c["id"] == "1002")["version_url"]
    summary = import_file(members_diff(tmp_path, [{"url": pinned}]), partial=True)
    assert (summary.removed, summary.lists_removed) == (1, False)
    assert head_state(COLLECTION)[0] == {"1002"}
    assert HeadRemoval.objects.get().mnemonic == "159947"


@pytest.mark.django_db
def test_an_empty_members_list_empties_head_and_a_diff_without_one_keeps_it(tmp_path: Path) -> None:
    import_file(REFAPP)
    import_file(diff(tmp_path, []), partial=True)
    assert head_state(COLLECTION)[0] == {"1002", "159947"}
    import_file(members_diff(tmp_path, []), partial=True)
    assert head_state(COLLECTION)[0] == set()


@pytest.mark.django_db
def test_a_version_file_with_a_removed_key_is_not_a_diff(tmp_path: Path) -> None:
    import_file(REFAPP)
    data = refapp()
    data["id"] = "v1.0-beta.2-copy"
    data["removed"] = [removed_entry("1002")]
    import_file(write(tmp_path / "copy.json", data))
    assert head_state(COLLECTION)[0] == {"1002", "159947"}


# --- reading them ----------------------------------------------------------------------------


def get(client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return orjson.loads(b"".join(response.streaming_content) if response.streaming else response.content)


@pytest.mark.django_db
def test_head_read_lists_what_left_it_only_when_asked(client, tmp_path: Path) -> None:
    import_file(REFAPP)
    before = datetime.now(UTC)
    import_file(beta3(tmp_path))
    plain = get(client, f"{COLLECTION}HEAD/{EVERYTHING_QUERY}")
    assert "removed" not in plain

    asked = get(client, f"{COLLECTION}HEAD/{EVERYTHING_QUERY}&includeRemoved=true")

    assert {key: value for key, value in asked.items() if key != "removed"} == plain
    [entry] = asked["removed"]
    assert entry["type"] == "Concept" and entry["id"] == "159947" and entry["url"] == f"{CIEL_CONCEPT}159947/"
    assert datetime.fromisoformat(entry["removed_on"]) >= before
    # The repository's own read of HEAD (what a mirror asks) says the same.
    assert get(client, f"{COLLECTION}{EVERYTHING_QUERY}&includeRemoved=true")["removed"] == [entry]
    # Paged too, and zipped (Compress: true) as OpenMRS reads.
    assert get(client, f"{COLLECTION}HEAD/?includeConcepts=true&includeRemoved=true")["removed"] == [entry]


@pytest.mark.django_db
def test_removed_follows_updated_since_and_the_included_kinds(client, tmp_path: Path) -> None:
    import_file(REFAPP)
    import_file(beta3(tmp_path))
    later = "2999-01-01T00:00:00Z"
    assert get(client, f"{COLLECTION}HEAD/{EVERYTHING_QUERY}&updatedSince={later}&includeRemoved=true")["removed"] == []
    assert (
        len(get(client, f"{COLLECTION}HEAD/{EVERYTHING_QUERY}&updatedSince=2016-01-01&includeRemoved=true")["removed"])
        == 1
    )
    assert get(client, f"{COLLECTION}HEAD/?includeMappings=true&limit=0&includeRemoved=true")["removed"] == []


@pytest.mark.django_db
def test_an_item_back_in_head_is_not_listed_as_removed(client, tmp_path: Path) -> None:
    import_file(REFAPP)
    import_file(beta3(tmp_path))
    back = [c for c in refapp()["concepts"] if c["id"] == "159947"]
    import_file(diff(tmp_path, [], back), partial=True)
    assert head_state(COLLECTION)[0] == {"1002", "159947"}
    assert get(client, f"{COLLECTION}HEAD/{EVERYTHING_QUERY}&includeRemoved=true")["removed"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"{COLLECTION}HEAD/?includeConcepts=true&includeRemoved=yes", "includeRemoved='yes'"),
        (f"{COLLECTION}v1.0-beta.2/?includeConcepts=true&includeRemoved=true", "HEAD only"),
        (f"{COLLECTION}HEAD/?includeRemoved=true", "add includeConcepts or includeMappings"),
        (f"{COLLECTION}?includeRemoved=true", "add includeConcepts or includeMappings"),
    ],
)
def test_bad_include_removed_is_a_json_400(client, path: str, message: str) -> None:
    import_file(REFAPP)
    response = client.get(path)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert message in response.json()["detail"]


@pytest.mark.django_db
def test_include_removed_false_is_the_plain_answer(client) -> None:
    import_file(REFAPP)
    plain = client.get(f"{COLLECTION}HEAD/?includeConcepts=true").content
    assert client.get(f"{COLLECTION}HEAD/?includeConcepts=true&includeRemoved=false").content == plain


def test_the_read_cache_watches_the_removals() -> None:
    assert HeadRemoval._meta.db_table in watched_tables()


@pytest.mark.django_db
def test_the_api_description_names_include_removed_and_the_removed_shape(client) -> None:
    schema = client.get("/openapi.json").json()
    described = {
        path
        for path, operations in schema["paths"].items()
        if any(parameter["name"] == "includeRemoved" for parameter in operations.get("get", {}).get("parameters", []))
    }
    # the owner's repositories and versions, and the signed-in user's (/user/...)
    assert described == {
        "/{owner_kind}/{owner}/{repo_type}/{repo}/",
        "/{owner_kind}/{owner}/{repo_type}/{repo}/{version}/",
        "/{owner_kind}/{repo_type}/{repo}/",
        "/{owner_kind}/{repo_type}/{repo}/{version}/",
    }
    removal = schema["components"]["schemas"]["Removal"]
    assert set(removal["required"]) == {"type", "id", "url", "version_url", "removed_on"}
