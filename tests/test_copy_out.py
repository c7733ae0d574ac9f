"""The binary COPY reader behind exports: every row, in order, and a usable connection afterwards."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction

from repos.copy_out import EmptyValue, copy_joined

pytestmark = pytest.mark.django_db


def rows_sql(body: str) -> str:
    return f"COPY (SELECT {body} FROM generate_series(1, %s) AS g ORDER BY g) TO STDOUT (FORMAT binary)"


def read(sql: str, params: list, block_size: int = 1000) -> list[tuple[bytes, int]]:
    with connection.cursor() as cursor:
        return list(copy_joined(cursor.cursor, sql, params, b",", block_size))


def still_usable() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        return cursor.fetchone()[0] == 42


def test_it_joins_every_value_in_order_across_blocks():
    # Values of growing length, with bytes that text and CSV COPY would escape or quote.
    blocks = read(rows_sql("'\"v\\' || g || E'\\t\\n,é' || repeat('x', g %% 50)"), [5000])
    assert len(blocks) > 10
    assert sum(rows for _block, rows in blocks) == 5000
    expected = ",".join(f'"v\\{g}\t\n,é' + "x" * (g % 50) for g in range(1, 5001))
    assert b",".join(block for block, _rows in blocks) == expected.encode()


def test_it_reads_an_empty_result_as_no_blocks():
    assert read(rows_sql("g::text"), [0]) == []
    assert still_usable()


def test_a_null_or_empty_value_is_refused_and_the_connection_recovers():
    for body in ("CASE WHEN g = 700 THEN NULL ELSE 'x' END", "CASE WHEN g = 700 THEN '' ELSE 'x' END"):
        with pytest.raises(EmptyValue), transaction.atomic():
            read(rows_sql(body), [2000], block_size=100)
        assert still_usable()


def test_a_server_error_mid_stream_raises_it_and_the_connection_recovers():
    with pytest.raises(psycopg.errors.DivisionByZero), transaction.atomic():
        read(rows_sql("CASE WHEN g = 90000 THEN (1 / (g - g))::text ELSE repeat('y', 100) END"), [100000])
    assert still_usable()


def test_a_reader_that_stops_early_leaves_the_connection_usable():
    with transaction.atomic():
        with connection.cursor() as cursor:
            blocks = copy_joined(cursor.cursor, rows_sql("repeat('z', 500)"), [200000], b",", 10000)
            first, rows = next(blocks)
            assert rows == 20 and len(first) == 20 * 500 + 19
            blocks.close()  # psycopg cancels the statement: this (sub)transaction is over
        transaction.set_rollback(True)
    assert still_usable()
