"""The importer's partial mode: a list of changes (an ``updatedSince`` body) applied to HEAD.

Items in the file replace their current version in HEAD, retired ones included; items the file
does not name stay as they are; an item delivered again unchanged changes nothing; no version is
written; a damaged file leaves everything as it was. And a version's own export, imported into
an empty database, reads back byte for byte: what a mirror's first sync relies on.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import connection

from repos.importers import CHANGED, CREATED, UNCHANGED, ImportFileError, import_file
from repos.importers.versions import create_version
from repos.models import ConceptVersion, MappingVersion, Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.items import EVERYTHING, ItemFilter
from repos.representation.shapes import repository_dict

FIXTURES = Path(__file__).parent / "fixtures"
CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"
VERSION = "v2015-03-13"
REPO = "/orgs/CIELTEST/sources/CIELTEST/"


def repository() -> Repository:
    return Repository.objects.get(mnemonic="CIELTEST")


def head_body(since: datetime | None = None) -> dict[str, Any]:
    """What ``GET <repo>/?...&limit=0&updatedSince=since`` answers: HEAD's items under the repository."""
    repo = repository()
    item_filter = ItemFilter(include_concepts=True, include_mappings=True, include_retired=True, updated_since=since)
    return orjson.loads(b"".join(stream_version(repo.head(), item_filter, top=repository_dict(repo))))


def head_state() -> dict[str, dict[str, str]]:
    """Item id -> uuid of the row HEAD holds, per kind."""
    body = head_body()
    return {kind: {item["id"]: item["version"] for item in body[kind]} for kind in ("concepts", "mappings")}


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def write_changes(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Two concepts renamed, one retired, one mapping retargeted, one mapping new: a day later."""
    body = head_body()
    concepts, mappings = body["concepts"], body["mappings"]
    newest = max(instant(item["updated_on"]) for item in concepts + mappings)
    stamp = (newest + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    picked = [dict(concepts[0]), dict(concepts[1]), dict(concepts[2]), dict(mappings[0]), dict(mappings[1])]
    picked[0]["display_name"] = "Renamed one"
    picked[1]["display_name"] = "Renamed two"
    picked[2]["retired"] = True
    picked[3]["map_type"] = "NARROWER-THAN"
    picked[4]["id"] = "brand-new-mapping"
    picked[4]["url"] = picked[4]["url"].replace(mappings[1]["id"], "brand-new-mapping")
    for item in picked:
        item["updated_on"] = stamp
        item["version"] = item["uuid"] = f"{item['id']}-changed"
    body["concepts"], body["mappings"] = picked[:3], picked[3:]
    path = tmp_path / "changes.json"
    path.write_text(json.dumps(body))
    return path, picked


@pytest.mark.django_db
def test_items_in_the_changes_replace_their_version_in_head_and_the_others_stay(tmp_path: Path) -> None:
    import_file(CIELTEST)
    before = head_state()
    version_rows = set(RepositoryVersion.objects.get(version=VERSION).concepts.values_list("id", flat=True))
    path, picked = write_changes(tmp_path)

    summary = import_file(path, partial=True)

    assert (summary.status, summary.version) == (CHANGED, "HEAD")
    assert (summary.concepts, summary.new_concepts, summary.mappings, summary.new_mappings) == (3, 3, 2, 2)
    assert summary.newest == instant(picked[0]["updated_on"])
    after = head_state()
    changed_ids = {item["id"] for item in picked}
    for kind in ("concepts", "mappings"):
        for item_id, uuid in after[kind].items():
            assert uuid == (f"{item_id}-changed" if item_id in changed_ids else before[kind][item_id])
    assert len(after["concepts"]) == len(before["concepts"])
    assert len(after["mappings"]) == len(before["mappings"]) + 1  # the new mapping
    retired = {item["id"]: item["retired"] for item in head_body()["concepts"]}
    assert retired[picked[2]["id"]] is True
    # No version was written, and the released one still holds exactly its rows.
    assert list(RepositoryVersion.objects.values_list("version", flat=True).order_by("version")) == ["HEAD", VERSION]
    assert set(RepositoryVersion.objects.get(version=VERSION).concepts.values_list("id", flat=True)) == version_rows


@pytest.mark.django_db
def test_changes_delivered_again_change_nothing(tmp_path: Path) -> None:
    import_file(CIELTEST)
    path, _ = write_changes(tmp_path)
    import_file(path, partial=True)
    rows = (ConceptVersion.objects.count(), MappingVersion.objects.count())
    state = head_state()
    body = head_body()

    again = import_file(path, partial=True)
    # The boundary instant is inclusive: a diff asked from the last instant seen holds it again.
    boundary = tmp_path / "boundary.json"
    boundary.write_text(json.dumps(head_body(since=instant(max(i["updated_on"] for i in body["concepts"])))))
    third = import_file(boundary, partial=True)

    assert (again.status, again.new_concepts, again.new_mappings) == (UNCHANGED, 0, 0)
    assert (third.status, third.items) == (UNCHANGED, 5)
    assert (ConceptVersion.objects.count(), MappingVersion.objects.count()) == rows
    assert head_state() == state
    assert head_body() == body


@pytest.mark.django_db
def test_changes_into_an_empty_mirror_fill_head_without_a_version(tmp_path: Path) -> None:
    import_file(CIELTEST)
    everything = head_body()
    path = tmp_path / "all.json"
    path.write_text(json.dumps(everything))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE repos_version_concepts, repos_version_mappings, repos_conceptversion, "
                       "repos_mappingversion, repos_repositoryversion, repos_repository CASCADE")  # fmt: skip

    summary = import_file(path, partial=True)

    assert (summary.status, summary.new_concepts, summary.new_mappings) == (CHANGED, 100, 100)
    assert head_body() == everything
    assert list(RepositoryVersion.objects.values_list("version", flat=True)) == ["HEAD"]


@pytest.mark.django_db
def test_damaged_changes_leave_head_as_it_was(tmp_path: Path) -> None:
    import_file(CIELTEST)
    path, _ = write_changes(tmp_path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    state = head_state()
    rows = (ConceptVersion.objects.count(), MappingVersion.objects.count())

    with pytest.raises(ImportFileError, match="damaged or truncated"):
        import_file(path, partial=True)

    assert head_state() == state
    assert (ConceptVersion.objects.count(), MappingVersion.objects.count()) == rows


@pytest.mark.django_db
def test_a_version_imported_from_its_own_export_reads_back_byte_for_byte(tmp_path: Path) -> None:
    import_file(CIELTEST)
    original = b"".join(stream_version(RepositoryVersion.objects.get(version=VERSION), EVERYTHING))
    exported = tmp_path / "export.json"
    exported.write_bytes(original)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE repos_version_concepts, repos_version_mappings, repos_conceptversion, "
                       "repos_mappingversion, repos_repositoryversion, repos_repository CASCADE")  # fmt: skip

    assert import_file(exported).status == CREATED

    again = b"".join(stream_version(RepositoryVersion.objects.get(version=VERSION), EVERYTHING))
    assert again == original


@pytest.mark.django_db
def test_a_version_whose_previous_version_is_not_here_keeps_the_url_its_file_names(tmp_path: Path) -> None:
    import_file(CIELTEST)  # makes v2015-03-13, which v1 then follows
    original = b"".join(stream_version(create_version(REPO, "v1", released=True), EVERYTHING))
    assert orjson.loads(original)["previous_version_url"] == f"{REPO}{VERSION}/"
    exported = tmp_path / "export.json"
    exported.write_bytes(original)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE repos_repository, repos_organization CASCADE")

    import_file(exported)

    assert b"".join(stream_version(RepositoryVersion.objects.get(version="v1"), EVERYTHING)) == original
