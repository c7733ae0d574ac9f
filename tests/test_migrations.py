"""Migrations that reshape tables keep every row: upgrading a database with content loses nothing."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("repos", "0005_drop_redundant_item_indexes")
AFTER = ("repos", "0006_membership_composite_keys")
MEMBERSHIP = (("repos_version_concepts", "conceptversion_id"), ("repos_version_mappings", "mappingversion_id"))


def migrate(target: tuple[str, str]):
    """Migrate the test database to ``target``; the historical models of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    executor.loader.build_graph()
    return executor.loader.project_state(target).apps


def membership() -> dict[str, list[tuple[int, int]]]:
    found = {}
    with connection.cursor() as cursor:
        for table, member in MEMBERSHIP:
            cursor.execute(f"SELECT repositoryversion_id, {member} FROM {table} ORDER BY 1, 2")
            found[table] = [tuple(row) for row in cursor.fetchall()]
    return found


def columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        return [column.name for column in connection.introspection.get_table_description(cursor, table)]


@pytest.mark.django_db(transaction=True)
def test_membership_rows_survive_the_move_to_composite_keys_and_back() -> None:
    apps = migrate(BEFORE)
    try:
        org = apps.get_model("repos", "Organization").objects.create(mnemonic="M")
        source = apps.get_model("repos", "Repository").objects.create(repo_type="sources", owner_org=org, mnemonic="S")
        versions = apps.get_model("repos", "RepositoryVersion")
        head = versions.objects.create(repository=source, version="HEAD")
        released = versions.objects.create(repository=source, version="v1")
        concepts = [
            apps.get_model("repos", "ConceptVersion").objects.create(source=source, mnemonic=str(n), uuid="u")
            for n in range(3)
        ]
        mappings = [
            apps.get_model("repos", "MappingVersion").objects.create(source=source, mnemonic=str(n), uuid="u")
            for n in range(2)
        ]
        head.concepts.add(*concepts)
        head.mappings.add(*mappings)
        released.concepts.add(concepts[0])
        released.mappings.add(mappings[1])
        before = membership()
        assert len(before["repos_version_concepts"]) == 4 and len(before["repos_version_mappings"]) == 3

        apps = migrate(AFTER)
        assert membership() == before
        assert all("id" not in columns(table) for table, _ in MEMBERSHIP)
        upgraded = apps.get_model("repos", "RepositoryVersion").objects.get(pk=head.pk)
        assert upgraded.concepts.count() == 3 and upgraded.mappings.count() == 2

        migrate(BEFORE)
        assert membership() == before
        assert all("id" in columns(table) for table, _ in MEMBERSHIP)
    finally:
        # Back to the newest state, not AFTER: later migrations must stay applied for later tests.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
