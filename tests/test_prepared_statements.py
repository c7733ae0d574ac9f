"""The hot lookups run as prepared statements on PostgreSQL, and answer exactly what the
client-side statements answer (the in-process tests count queries with Django's query log,
which takes the unprepared route; gunicorn's workers take this one)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from tests.export_support import ciel_v1

REPO = "/orgs/CIEL/sources/CIEL/"
URLS = [
    f"{REPO}v1/concepts/1065/",
    f"{REPO}v1/mappings/",
    f"{REPO}concepts/1065/",
    f"{REPO}v1/",
    f"{REPO}latest/",
    REPO,
    f"{REPO}versions/",
    f"{REPO}v1/concepts/no-such-concept/",
    "/orgs/NOBODY/sources/CIEL/v1/concepts/1065/",
]


def prepared() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def answers(client) -> list[tuple[int, bytes]]:
    return [(r.status_code, r.content) for r in (client.get(url) for url in URLS)]


@pytest.mark.django_db
def test_prepared_lookups_answer_what_unprepared_ones_do(org, anon_client):
    ciel_v1(org)
    with override_settings(DATABASE_PREPARED_STATEMENTS=False):
        unprepared = answers(anon_client)
        assert prepared() == set()
    assert answers(anon_client) == unprepared
    assert answers(anon_client) == unprepared  # and again, now from the prepared statements
    statements = prepared()
    assert any("repos_version_concepts" in sql for sql in statements)  # the member lookup
    assert any("repos_repositoryversion" in sql for sql in statements)  # the version lookup
    assert [status for status, _ in unprepared] == [200, 200, 200, 200, 200, 200, 200, 404, 404]
