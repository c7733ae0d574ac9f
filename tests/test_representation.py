"""The stored renderings of items are the dynamic rendering, byte for byte.

Exports and reads stream each item's JSON as stored by ``render_pending`` (split around the one
mutable value, ``is_latest_version``) and render on the fly only the rows not rendered yet.
Both paths must give the same bytes, before and after a newer version flips the flag.
"""

from __future__ import annotations

import orjson
import pytest

from repos.models import ConceptVersion, MappingVersion
from repos.representation.body import stream_version
from repos.representation.items import CONCEPTS, EVERYTHING, MAPPINGS, item_bytes
from repos.representation.rendering import render_all_pending
from tests.factories import add_concept, add_mapping, make_org, make_source, make_version


def body(version) -> bytes:
    return b"".join(stream_version(version, EVERYTHING))


@pytest.fixture
def source(db):
    source = make_source(make_org("CIEL"), "CIEL")
    first = add_concept(source, "1", names=[{"name": "Anemia", "locale": "en", "name_type": "FULLY_SPECIFIED"}])
    add_concept(source, "2", retired=True, extras={"k": "v \u00e9 \x01"})
    add_mapping(
        source, "m1", from_concept=first, to_concept_code="413532003", to_source_url="/orgs/IHTSDO/sources/SNOMED-CT/"
    )
    return source


def test_it_streams_the_same_bytes_rendered_or_not(source):
    version = make_version(source, "v1")
    dynamic = body(version)
    assert ConceptVersion.objects.filter(json_head__isnull=True).exists()

    assert render_all_pending() == 3
    assert not ConceptVersion.objects.filter(json_head__isnull=True).exists()
    assert not MappingVersion.objects.filter(json_head__isnull=True).exists()
    assert body(version) == dynamic
    assert render_all_pending() == 0


def test_it_reads_is_latest_version_live_from_the_row(source):
    version = make_version(source, "v1")
    render_all_pending()
    before = orjson.loads(body(version))
    assert before["concepts"][0]["is_latest_version"] is True

    add_concept(source, "1", names=[{"name": "Anemia (blood loss)", "locale": "en"}])
    after = orjson.loads(body(version))
    assert after["concepts"][0]["is_latest_version"] is False
    # everything else of the old row is unchanged
    before["concepts"][0].pop("is_latest_version")
    after["concepts"][0].pop("is_latest_version")
    assert after["concepts"] == before["concepts"]


def test_it_renders_single_items_like_items_inside_a_version(source):
    version = make_version(source, "v1")
    listed = orjson.loads(body(version))
    concept_pk = version.concepts.order_by("id").values_list("id", flat=True)[0]
    mapping_pk = version.mappings.values_list("id", flat=True)[0]
    dynamic = (item_bytes(CONCEPTS, concept_pk), item_bytes(MAPPINGS, mapping_pk))
    render_all_pending()
    assert (item_bytes(CONCEPTS, concept_pk), item_bytes(MAPPINGS, mapping_pk)) == dynamic
    assert orjson.loads(dynamic[0]) == listed["concepts"][0]
    assert orjson.loads(dynamic[1]) == listed["mappings"][0]


def test_it_keeps_the_contract_key_order(source):
    render_all_pending()
    data = orjson.loads(body(make_version(source, "v1")))
    assert list(data["concepts"][0]) == [
        "type", "uuid", "id", "external_id", "concept_class", "datatype", "display_name", "display_locale",
        "names", "descriptions", "extras", "retired", "retire_reason", "source", "source_url", "owner",
        "owner_type", "owner_url", "version", "created_on", "updated_on", "version_created_on",
        "version_created_by", "update_comment", "is_latest_version", "url", "version_url", "previous_version_url",
    ]  # fmt: skip
    assert list(data["mappings"][0]) == [
        "type", "uuid", "id", "external_id", "retired", "retire_reason", "map_type", "source", "owner",
        "owner_type", "owner_url", "from_concept_code", "from_concept_name", "from_concept_url",
        "to_concept_code", "to_concept_name", "to_concept_url", "from_source_owner", "from_source_owner_type",
        "from_source_url", "from_source_name", "to_source_owner", "to_source_owner_type", "to_source_url",
        "to_source_name", "url", "version", "version_url", "is_latest_version", "sort_weight", "extras",
        "update_comment", "created_on", "updated_on", "created_by", "updated_by",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "fixture",
    [
        "ocl-v1-CIEL-subset-2015.tgz",
        "ocl-v1-CIELTEST-2015.zip",
        "ocl-v1-collection-refapp.json",
        "ocl-v2-DemoSource_v1.0.20230526120030.zip",
    ],
)
def test_it_stores_renderings_on_import_that_equal_the_dynamic_rendering(db, fixture):
    from repos.importers import import_file
    from repos.models import RepositoryVersion
    from tests.conftest import FIXTURES

    summary = import_file(FIXTURES / fixture, quiet=True)
    assert not ConceptVersion.objects.filter(json_head__isnull=True).exists()
    assert not MappingVersion.objects.filter(json_head__isnull=True).exists()
    version = RepositoryVersion.objects.get(
        repository__mnemonic=summary.repository.rstrip("/").rsplit("/", 1)[-1], version=summary.version
    )
    stored = body(version)

    ConceptVersion.objects.update(json_head=None, json_tail=None)
    MappingVersion.objects.update(json_head=None, json_tail=None)
    assert body(version) == stored


def test_it_knows_the_exact_size_of_a_rendered_body(source):
    from repos.representation.body import body_size
    from repos.representation.items import ItemFilter

    version = make_version(source, "v1")
    assert body_size(version) is None  # not rendered yet: unknown without reading
    render_all_pending()
    assert body_size(version) == len(body(version))
    no_retired = ItemFilter(include_concepts=True, include_mappings=True)
    assert body_size(version, no_retired) == len(b"".join(stream_version(version, no_retired)))
    add_concept(source, "1", names=[{"name": "Anemia, again", "locale": "en"}])  # flips a flag: false
    render_all_pending()
    assert body_size(version) == len(body(version))
    assert body_size(version, ItemFilter(include_concepts=True, limit=1)) is None


def test_it_knows_the_size_of_imported_sources_and_collections(db):
    from repos.importers import import_file
    from repos.models import RepositoryVersion
    from repos.representation.body import body_size
    from tests.conftest import FIXTURES

    for name in ("ocl-v1-collection-refapp.json", "ocl-v2-DemoSource_v1.0.20230526120030.zip"):
        import_file(FIXTURES / name, quiet=True)
    for version in RepositoryVersion.objects.all():
        assert body_size(version) == len(body(version)), version


def bulk_body(version, item_filter=EVERYTHING) -> bytes:
    return b"".join(stream_version(version, item_filter, bulk=True))


def test_the_bulk_copy_route_streams_the_same_bytes_as_the_batched_read(source):
    """The export reads each list with one COPY; every character a JSON text can hold (quotes,
    backslashes, escaped control characters, non-ASCII) must come back verbatim."""
    from datetime import timedelta

    from repos.representation.items import ItemFilter

    tricky = 'quote " backslash \\ tab \t newline \n cr \r \x01 \x02 comma , é 中文 \U0001f600'
    add_concept(source, "3", names=[{"name": tricky, "locale": "en"}], extras={tricky: [tricky, "\\\\"]})
    version = make_version(source, "v1")
    add_concept(source, "1", names=[{"name": "Anemia, again", "locale": "en"}])  # v1's "1" is no longer latest
    render_all_pending()
    assert bulk_body(version) == body(version)
    assert b'"is_latest_version":false' in bulk_body(version)
    concepts = {item["id"]: item for item in orjson.loads(bulk_body(version))["concepts"]}
    assert concepts["3"]["names"][0]["name"] == tricky
    assert concepts["3"]["extras"] == {tricky: [tricky, "\\\\"]}
    newest = ConceptVersion.objects.order_by("-updated_on").first().updated_on
    for item_filter in (
        ItemFilter(include_concepts=True),
        ItemFilter(include_mappings=True, include_retired=True),
        ItemFilter(include_concepts=True, include_retired=True, updated_since=newest),
        ItemFilter(include_concepts=True, include_retired=True, updated_since=newest + timedelta(days=1)),
        ItemFilter(include_concepts=True, include_retired=True, offset=1, limit=2),
    ):
        assert bulk_body(version, item_filter) == b"".join(stream_version(version, item_filter)), item_filter


def test_the_bulk_copy_route_reports_progress_and_spans_blocks(source, monkeypatch):
    from repos.representation import body as version_body

    for number in range(4, 60):
        add_concept(source, str(number))
    version = make_version(source, "v1")
    render_all_pending()
    monkeypatch.setattr(version_body, "COPY_BLOCK", 2000)  # many blocks: separators between them
    seen: list[int] = []
    assert b"".join(stream_version(version, EVERYTHING, seen.append, bulk=True)) == body(version)
    assert seen[-1] == version.concepts.count() + version.mappings.count()
    assert len(seen) > 5 and seen == sorted(seen)


def test_a_newer_file_writes_its_new_rows_rendered_and_equal_to_the_dynamic_rendering(db, tmp_path, monkeypatch):
    """A re-import renders the rows the merge found new as it inserts them (not by a second
    pass over the table), with the uuid and previous version the merge gave them."""
    from repos.importers import import_file, loader
    from repos.models import RepositoryVersion
    from tests.test_import_ocl import DEMO, read_file, write_json

    import_file(DEMO)
    data = read_file(DEMO)
    data["id"] = data["version"] = "v1.1"
    # a new row's previous version is the row that was latest (the file's second concept was not)
    follow_latest = sum(1 for concept in data["concepts"][:3] if concept.get("is_latest_version", True))
    for concept in data["concepts"][:3]:
        concept["names"][0]["name"] += " (renamed)"
        concept["uuid"] = concept["version"] = concept["uuid"] + "1"
    data["mappings"][0]["map_type"] = "NARROWER-THAN"  # same uuid, other content: a suffixed uuid
    data["concepts"].append(dict(data["concepts"][0]))  # repeated in the file: one row
    monkeypatch.setattr(loader, "render_pending", lambda kind: 0)  # the merge must render its rows itself
    summary = import_file(write_json(tmp_path / "DemoSource_v1.1.20230601000000.json", data))
    assert (summary.new_concepts, summary.new_mappings) == (3, 1)
    assert not ConceptVersion.objects.filter(json_head__isnull=True).exists()
    assert not MappingVersion.objects.filter(json_head__isnull=True).exists()
    assert ConceptVersion.objects.exclude(previous_version_uuid=None).count() == follow_latest
    version = RepositoryVersion.objects.get(repository__mnemonic="DemoSource", version="v1.1")
    stored = body(version)

    ConceptVersion.objects.update(json_head=None, json_tail=None)
    MappingVersion.objects.update(json_head=None, json_tail=None)
    assert body(version) == stored
