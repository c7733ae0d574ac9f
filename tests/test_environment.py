"""Settings read from the environment: typed, refused loudly when nonsense, and what PostgreSQL
sessions are told."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from foundation.environment import env_float


def test_a_number_setting_reads_its_value_its_default_or_none_when_set_empty(monkeypatch) -> None:
    monkeypatch.delenv("SOME_COST", raising=False)
    assert env_float("SOME_COST", 1.1) == 1.1
    monkeypatch.setenv("SOME_COST", "2.5")
    assert env_float("SOME_COST", 1.1) == 2.5
    monkeypatch.setenv("SOME_COST", "")
    assert env_float("SOME_COST", 1.1) is None


@pytest.mark.parametrize("raw", ["cheap", "0", "-1"])
def test_a_number_setting_refuses_what_is_not_a_positive_number(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("SOME_COST", raw)
    with pytest.raises(ImproperlyConfigured, match="SOME_COST"):
        env_float("SOME_COST", 1.1)


@pytest.mark.django_db
def test_postgresql_sessions_plan_with_no_parallel_workers_and_the_ssd_page_cost() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        assert cursor.fetchone()[0] == "1.1"
        cursor.execute("SHOW max_parallel_workers_per_gather")
        assert cursor.fetchone()[0] == "0"
