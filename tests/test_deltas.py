"""Version deltas as content: made from two versions, applied to the older one, they give the newer.

Upstream: the CIEL subset imported as version A, and version B imported from A's export with a
generated change (items changed, added and removed, by ``bench/generate_ciel.py``'s generators).
The "mirror" is the same database once the upstream's repository is gone: A imported from A's
archive, then the delta applied. The export of the result must have B's sha256.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.generate_ciel import concept as generated_concept
from foundation.archive import ArchiveResult, archive_file_name, spooled, write_archive
from repos.checksum_store import version_checksums
from repos.deltas import DeltaError, check_pair, count_delta, stream_delta
from repos.importers import ImportFileError, import_file
from repos.importers.delta import apply_delta
from repos.models import Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.encoding import iso

FIXTURES = Path(__file__).parent / "fixtures"
CIEL = FIXTURES / "ocl-v1-CIEL-subset-2015.tgz"
CIEL_URL = "/orgs/CIEL/sources/CIEL/"
COLLECTION_URL = "/orgs/CIEL/collections/Starter/"


def write_export(version: RepositoryVersion, directory: Path, fmt: str = "tgz") -> tuple[Path, ArchiveResult]:
    """The version's export archive, as the export job writes it (same stream, same writer)."""
    last_updated = version.get_last_updated()
    path = directory / archive_file_name(version.repository.mnemonic, version.version, last_updated, fmt)
    with spooled(stream_version(version)) as spool, open(path, "wb") as sink:
        return path, write_archive(spool, sink, fmt, last_updated)


def write_delta(
    older: RepositoryVersion, newer: RepositoryVersion, export: ArchiveResult, directory: Path, fmt: str = "tgz"
) -> Path:
    path = directory / f"{newer.repository.mnemonic}_{newer.version}.delta-{older.version}.{fmt}"
    facts = {"format": fmt, "size": export.size, "sha256": export.sha256}
    with spooled(stream_delta(older, newer, facts)) as spool, open(path, "wb") as sink:
        write_archive(spool, sink, fmt, newer.get_last_updated())
    return path


def body_of(version: RepositoryVersion) -> dict[str, Any]:
    return orjson.loads(b"".join(stream_version(version)))


def changed_concept(rng: random.Random, item: dict[str, Any], seq: int) -> dict[str, Any]:
    """A new version of ``item``: generated names, descriptions and class under its own id."""
    fresh = generated_concept(rng, int(item["id"]), seq)
    for key in ("source", "source_url", "owner", "owner_type", "owner_url", "url", "created_on"):
        fresh[key] = item[key]
    fresh["version_url"] = f"{item['url']}{fresh['uuid']}/"
    fresh["previous_version_url"] = item["version_url"]
    fresh["updated_on"] = fresh["version_created_on"] = "2016-03-01T10:00:00Z"
    return fresh


def changed_mapping(item: dict[str, Any], seq: int) -> dict[str, Any]:
    fresh = dict(item, uuid=f"m{seq}", version=f"m{seq}", map_type=f"CHANGED-{seq}")
    fresh["version_url"] = f"{item['url']}m{seq}/"
    fresh["updated_on"] = "2016-03-02T10:00:00Z"
    return fresh


def next_version(older: RepositoryVersion, version_id: str, body: dict[str, Any], directory: Path) -> Path:
    """A version file of ``body``'s items under ``older``'s repository, made after it."""
    header = body_of_header(older)
    header.update(
        id=version_id,
        version=version_id,
        uuid=f"uuid-{version_id}",
        version_url=f"{older.repository.url}{version_id}/",
        previous_version_url=older.url,
        created_on="2016-04-01T00:00:00Z",
        updated_on="2016-04-01T00:00:00Z",
        released=True,
    )
    path = directory / f"{version_id}.json"
    path.write_bytes(orjson.dumps({**header, **body}))
    return path


def body_of_header(version: RepositoryVersion) -> dict[str, Any]:
    return {key: value for key, value in body_of(version).items() if key not in ("concepts", "mappings")}


def generated_change(body: dict[str, Any], seed: int) -> dict[str, Any]:
    """``body``'s items with 20 concepts and 30 mappings changed, 10 concepts added, 15 concepts
    and 40 mappings gone."""
    rng = random.Random(seed)
    concepts, mappings = list(body["concepts"]), list(body["mappings"])
    for index in rng.sample(range(len(concepts)), 20):
        concepts[index] = changed_concept(rng, concepts[index], 800_000 + index)
    for index in rng.sample(range(len(mappings)), 30):
        mappings[index] = changed_mapping(mappings[index], 900_000 + index)
    for gone in sorted(rng.sample(range(len(concepts)), 15), reverse=True):
        del concepts[gone]
    for gone in sorted(rng.sample(range(len(mappings)), 40), reverse=True):
        del mappings[gone]
    concepts += [generated_concept(rng, 990_000 + n, 700_000 + n) for n in range(10)]
    return {"concepts": concepts, "mappings": mappings}


def version_at(url: str, version_id: str) -> RepositoryVersion:
    return RepositoryVersion.objects.select_related("repository__owner_org").get(
        repository__owner_org__mnemonic="CIEL", repository__mnemonic=url.strip("/").split("/")[-1], version=version_id
    )


@pytest.fixture
def upstream_source(db, tmp_path: Path) -> tuple[RepositoryVersion, RepositoryVersion]:
    """CIEL's subset as A, and B: A with a generated change."""
    older = version_at(CIEL_URL, import_file(CIEL).version)
    change = generated_change(body_of(older), seed=18)
    newer = version_at(CIEL_URL, import_file(next_version(older, "v2016-04-01", change, tmp_path)).version)
    return older, newer


@pytest.fixture
def upstream_collection(db, tmp_path: Path) -> tuple[RepositoryVersion, RepositoryVersion]:
    """A collection of CIEL's items (A: 300 concepts, 200 mappings) and B, which keeps most of
    them, changes some, drops some and takes others of the source."""
    source = version_at(CIEL_URL, import_file(CIEL).version)
    items = body_of(source)
    rng = random.Random(7)
    concepts, mappings = items["concepts"], items["mappings"]
    header = {
        "type": "Collection Version",
        "id": "c1",
        "version": "c1",
        "uuid": "uuid-c1",
        "short_code": "Starter",
        "name": "Starter",
        "collection_type": "Subset",
        "url": COLLECTION_URL,
        "owner": "CIEL",
        "owner_type": "Organization",
        "owner_url": "/orgs/CIEL/",
        "version_url": f"{COLLECTION_URL}c1/",
        "created_on": "2016-02-01T00:00:00Z",
        "updated_on": "2016-02-01T00:00:00Z",
        "released": True,
        "collection": {"type": "Collection", "id": "Starter", "url": COLLECTION_URL, "uuid": "uuid-starter"},
    }
    first = {
        "concepts": concepts[:300],
        "mappings": mappings[:200],
        "references": [{"expression": item["url"]} for item in concepts[:300]],
    }
    path = tmp_path / "c1.json"
    path.write_bytes(orjson.dumps({**header, **first}))
    older = version_at(COLLECTION_URL, import_file(path).version)
    kept = concepts[40:300] + [changed_concept(rng, item, 600_000 + n) for n, item in enumerate(concepts[300:305])]
    second = {
        "concepts": kept + concepts[320:340],
        "mappings": mappings[25:200] + [changed_mapping(item, 500_000 + n) for n, item in enumerate(mappings[:5])],
        "references": [{"expression": item["url"]} for item in kept],
    }
    newer = version_at(COLLECTION_URL, import_file(next_version(older, "c2", second, tmp_path)).version)
    return older, newer


def mirrored(older: RepositoryVersion, newer: RepositoryVersion, tmp_path: Path, fmt: str) -> tuple[str, str]:
    """(B's sha256 upstream, the sha256 of the export of A + delta here)."""
    older_archive, _ = write_export(older, tmp_path, fmt)
    _, newer_export = write_export(newer, tmp_path, fmt)
    delta = write_delta(older, newer, newer_export, tmp_path, fmt)
    url, target = newer.repository.url, newer.version
    # Gone upstream: whatever the mirror holds comes from the two archives alone.
    Repository.objects.all().delete()
    import_file(older_archive)
    summary = apply_delta(delta)
    assert (summary.repository, summary.version, summary.status) == (url, target, "created")
    applied = version_at(url, target)
    _, result = write_export(applied, tmp_path, fmt)
    # B is the newest version here: HEAD holds exactly its items, as after a whole import of it.
    head = applied.repository.head()
    for held in ("concepts", "mappings"):
        assert set(getattr(head, held).values_list("id", flat=True)) == set(
            getattr(applied, held).values_list("id", flat=True)
        )
    return newer_export.sha256, result.sha256


@pytest.mark.parametrize("fmt", ["tgz", "zip"])
def test_a_source_version_and_its_delta_give_the_next_version_exactly(upstream_source, tmp_path, fmt) -> None:
    older, newer = upstream_source
    counts = count_delta(older, newer)
    # 20 changed and 10 new concepts (of which some may have been dropped again), 30 changed mappings
    assert 15 <= counts.changed["concepts"] <= 30 and 20 <= counts.changed["mappings"] <= 30
    assert counts.removed["concepts"] >= 10 and counts.removed["mappings"] >= 35
    expected, got = mirrored(older, newer, tmp_path, fmt)
    assert got == expected


def test_a_collection_version_and_its_delta_give_the_next_version_exactly(upstream_collection, tmp_path) -> None:
    older, newer = upstream_collection
    counts = count_delta(older, newer)
    assert counts.changed == {"concepts": 25, "mappings": 5}
    assert counts.removed == {"concepts": 40, "mappings": 20}
    expected, got = mirrored(older, newer, tmp_path, "tgz")
    assert got == expected
    assert version_at(COLLECTION_URL, "c2").references == newer.references


def test_the_delta_holds_the_changed_items_whole_and_the_removed_ones_by_id_and_url(upstream_source) -> None:
    older, newer = upstream_source
    delta = orjson.loads(b"".join(stream_delta(older, newer, {"sha256": "x"}, batch_size=7)))
    whole = body_of(newer)
    assert list(delta)[: len(body_of_header(newer))] == list(body_of_header(newer))
    assert {key: delta[key] for key in body_of_header(newer)} == body_of_header(newer)
    before = body_of(older)
    held = {item["version_url"] for item in before["concepts"]}
    assert delta["concepts"] == [item for item in whole["concepts"] if item["version_url"] not in held]
    still = {item["url"] for item in whole["concepts"]}
    removed = [{"type": "Concept", "id": item["id"], "url": item["url"]} for item in before["concepts"]]
    assert [entry for entry in delta["removed"] if entry["type"] == "Concept"] == [
        entry for entry in removed if entry["url"] not in still
    ]
    assert delta["delta"]["to"] == {
        "id": newer.version,
        "url": newer.url,
        "last_updated": iso(newer.get_last_updated()),
        "concepts": len(whole["concepts"]),
        "mappings": len(whole["mappings"]),
        "checksums": version_checksums(newer),
        "export": {"sha256": "x"},
    }
    assert delta["delta"]["from"]["id"] == older.version


def test_a_delta_is_the_same_bytes_every_time(upstream_source) -> None:
    older, newer = upstream_source
    made = [hashlib.sha256(b"".join(stream_delta(older, newer, {}, batch_size=size))).hexdigest() for size in (5, 5000)]
    assert made[0] == made[1]


def test_a_delta_joins_an_older_version_to_a_newer_one_of_one_repository(upstream_source) -> None:
    older, newer = upstream_source
    for a, b in ((newer, older), (newer, newer), (older.repository.head(), newer), (older, newer.repository.head())):
        with pytest.raises(DeltaError):
            check_pair(a, b)
    other = Repository.objects.create(repo_type="sources", mnemonic="Other", owner_org=older.repository.owner_org)
    with pytest.raises(DeltaError, match="different repositories"):
        check_pair(RepositoryVersion.objects.create(repository=other, version="v0"), newer)


def test_a_delta_applied_to_another_version_is_refused_and_writes_nothing(upstream_source, tmp_path) -> None:
    older, newer = upstream_source
    _, newer_export = write_export(newer, tmp_path)
    delta = write_delta(older, newer, newer_export, tmp_path)
    with pytest.raises(ImportFileError, match="a version delta, not an export"):
        import_file(delta)
    # Remove a concept from A behind the delta's back: the result would not be B.
    older.concepts.remove(older.concepts.order_by("id").first())
    RepositoryVersion.objects.filter(pk=newer.pk).delete()
    with pytest.raises(ImportFileError, match="not a delta from this version"):
        apply_delta(delta)
    assert not RepositoryVersion.objects.filter(version=newer.version).exists()


def test_a_delta_applied_twice_changes_nothing_the_second_time(upstream_source, tmp_path) -> None:
    older, newer = upstream_source
    _, newer_export = write_export(newer, tmp_path)
    delta = write_delta(older, newer, newer_export, tmp_path)
    assert apply_delta(delta).status == "unchanged"


def test_a_delta_without_its_base_version_is_refused(upstream_source, tmp_path) -> None:
    older, newer = upstream_source
    _, newer_export = write_export(newer, tmp_path)
    delta = write_delta(older, newer, newer_export, tmp_path)
    RepositoryVersion.objects.filter(pk__in=[older.pk, newer.pk]).delete()
    with pytest.raises(ImportFileError, match="starts from version"):
        apply_delta(delta)


def test_a_delta_whose_version_lost_its_newest_items_is_stamped_with_the_newest_it_holds(db, tmp_path) -> None:
    older = version_at(CIEL_URL, import_file(CIEL).version)
    body = body_of(older)
    newest = max(item["updated_on"] for kind in ("concepts", "mappings") for item in body[kind])
    kept = {kind: [item for item in body[kind] if item["updated_on"] != newest] for kind in ("concepts", "mappings")}
    assert 0 < len(kept["concepts"]) + len(kept["mappings"]) < len(body["concepts"]) + len(body["mappings"])
    newer = version_at(CIEL_URL, import_file(next_version(older, "v-without-the-newest", kept, tmp_path)).version)
    assert newer.get_last_updated() < older.get_last_updated()

    upstream, here = mirrored(older, newer, tmp_path, "tgz")
    assert here == upstream  # the archive's name and mtime are the version's newest instant
