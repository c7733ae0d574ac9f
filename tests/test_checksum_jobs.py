"""OCL checksums deferred past the import: one RQ job per repository fills them in after the commit.

The import writes its rows without checksums (what kept it at its speed) and queues the job on
the real Redis; the job runs in a real RQ worker (``work()``, as the export tests run theirs).
Every figure is computed here with ``ocldev`` from the JSON the API served, never hard-coded:
before the job has run (the answers compute what is missing) and after (the rows hold it).
"""

from __future__ import annotations

import pytest

from repos import checksum_jobs
from repos.checksum_store import backfill
from repos.importers import import_file
from repos.importers.errors import ImportFileError
from repos.models import ConceptVersion, MappingVersion, Repository
from tests.export_support import queued_job_ids, work
from tests.test_checksums import (
    CIEL,
    DEMO,
    REFAPP,
    body,
    listing,
    oclapi2_page_checksum,
    ocldev_checksums,
    served_items,
)

pytestmark = pytest.mark.django_db(transaction=True)


def repository_id(summary) -> int:
    """The imported repository's row (its URL ends with its id)."""
    return Repository.objects.get(mnemonic=summary.repository.rstrip("/").rsplit("/", 1)[1]).pk


def rows_without_checksums() -> int:
    return (
        ConceptVersion.objects.filter(checksum_standard__isnull=True).count()
        + MappingVersion.objects.filter(checksum_standard__isnull=True).count()
    )


def expected_listing(client, version_url: str) -> dict[str, dict]:
    """What a client computes with ocldev from the items it was served, by (id, version id)."""
    served = served_items(client, version_url)
    return {
        kind: {(item["id"], item["version"]): ocldev_checksums(kind, item) for item in served[kind]}
        for kind in ("concepts", "mappings")
    }


def listed(client, version_url: str) -> dict[str, dict]:
    got = listing(client, version_url)
    return {
        kind: {(entry["id"], entry["version"]): entry["checksums"] for entry in got[kind]}
        for kind in ("concepts", "mappings")
    }


def version_expected(expected: dict[str, dict]) -> dict[str, str]:
    sums = [value for kind in ("concepts", "mappings") for value in expected[kind].values()]
    return {name: oclapi2_page_checksum([s[name] for s in sums]) for name in ("standard", "smart")}


@pytest.mark.parametrize(
    ("path", "version_url", "concepts", "mappings"), [CIEL, DEMO, REFAPP], ids=["CIEL", "v2", "refapp"]
)
def test_an_import_leaves_its_checksums_to_one_job_which_stores_what_ocldev_computes_from_the_served_json(
    anon_client, redis_conn, path, version_url, concepts, mappings
):
    summary = import_file(path)
    repository = repository_id(summary)
    assert rows_without_checksums() == concepts + mappings
    assert queued_job_ids() == [f"checksums-{repository}"]
    expected = expected_listing(anon_client, version_url)
    assert sum(len(items) for items in expected.values()) == concepts + mappings

    work()

    assert rows_without_checksums() == 0
    assert listed(anon_client, version_url) == expected
    detail = body(anon_client.get(f"{version_url}?checksums=true"))
    assert (detail["checksums"], detail["checksums_pending"]) == (version_expected(expected), 0)


def test_before_the_job_runs_every_answer_that_shows_checksums_is_already_right(anon_client, redis_conn):
    path, version_url, concepts, mappings = DEMO
    import_file(path)
    expected = expected_listing(anon_client, version_url)
    assert listed(anon_client, version_url) == expected
    for kind in ("concepts", "mappings"):
        page = body(anon_client.get(f"{version_url}{kind}/?checksums=true&limit=0"))
        assert {(item["id"], item["version"]): item["checksums"] for item in page} == expected[kind]
        item = page[0]
        detail = body(anon_client.get(f"{version_url}{kind}/{item['id']}/?checksums=true"))
        assert detail["checksums"] == expected[kind][(item["id"], item["version"])]
    detail = body(anon_client.get(f"{version_url}?checksums=true"))
    assert detail["checksums"] == version_expected(expected)
    assert detail["checksums_pending"] == concepts + mappings
    versions = {v["id"]: v for v in body(anon_client.get(f"{version_url.rsplit('/', 2)[0]}/versions/?checksums=true"))}
    assert versions["HEAD"]["checksums"] == version_expected(expected)
    assert versions["HEAD"]["checksums_pending"] == concepts + mappings
    assert rows_without_checksums() == concepts + mappings  # answered, not stored: that is the job's

    work()
    after = body(anon_client.get(f"{version_url}?checksums=true"))
    assert (after["checksums"], after["checksums_pending"]) == (detail["checksums"], 0)


def test_the_job_is_idempotent_and_a_run_that_dies_is_continued_by_the_next(anon_client, redis_conn):
    path, version_url, concepts, mappings = CIEL
    summary = import_file(path)
    repository = repository_id(summary)
    expected = expected_listing(anon_client, version_url)

    class WorkerDied(Exception):
        pass

    def die(_kind: str, _rows: int) -> None:
        raise WorkerDied

    with pytest.raises(WorkerDied):  # killed after its first batch was committed
        backfill(500, on_batch=die, repository_id=repository)
    assert rows_without_checksums() == concepts + mappings - 500

    assert checksum_jobs.fill_checksums(repository)["rows"] == concepts + mappings - 500
    assert checksum_jobs.fill_checksums(repository)["rows"] == 0  # twice: nothing left to do
    work()  # the queued job finds nothing either
    assert rows_without_checksums() == 0
    assert listed(anon_client, version_url) == expected


def test_a_repository_has_one_waiting_job_however_often_it_is_queued_and_another_its_own(redis_conn):
    first = import_file(DEMO[0])
    assert checksum_jobs.queue_fill(repository_id(first)) == queued_job_ids()[0]
    assert len(queued_job_ids()) == 1  # still waiting: the same job takes every import's rows
    import_file(CIEL[0])
    assert len(queued_job_ids()) == 2
    work()
    assert rows_without_checksums() == 0
    assert queued_job_ids() == []


def test_the_inline_setting_stores_checksums_with_the_rows_and_queues_nothing(anon_client, redis_conn, settings):
    settings.CHECKSUMS_AT_IMPORT = "inline"
    path, version_url, _concepts, _mappings = DEMO
    import_file(path)
    assert rows_without_checksums() == 0
    assert queued_job_ids() == []
    assert listed(anon_client, version_url) == expected_listing(anon_client, version_url)
    assert body(anon_client.get(f"{version_url}?checksums=true"))["checksums_pending"] == 0


def test_a_rolled_back_import_queues_nothing(redis_conn, tmp_path):
    damaged = tmp_path / "CIEL_v1.20240101000000.tgz"
    damaged.write_bytes(CIEL[0].read_bytes()[:-2000])
    with pytest.raises(ImportFileError, match="damaged|truncated"):
        import_file(damaged)
    assert rows_without_checksums() == 0
    assert queued_job_ids() == []


def test_a_job_that_stored_many_rows_checksums_vacuums_the_item_tables_it_rewrote(redis_conn, monkeypatch):
    from django.db import connection

    def vacuumed() -> dict[str, object]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, last_vacuum, last_analyze FROM pg_stat_user_tables "
                "WHERE relname IN ('repos_conceptversion', 'repos_mappingversion')"
            )
            return {name: (vacuum, analyze) for name, vacuum, analyze in cursor.fetchall()}

    monkeypatch.setattr(checksum_jobs, "VACUUM_AFTER_ROWS", 1000)  # the CIEL subset's 6,843 rows count as many
    before = vacuumed()
    import_file(CIEL[0])
    work()
    assert rows_without_checksums() == 0
    after = vacuumed()
    for table in ("repos_conceptversion", "repos_mappingversion"):
        vacuum, analyze = after[table]
        assert vacuum is not None and vacuum != before[table][0] and analyze is not None
