"""Reading one text column out of PostgreSQL with ``COPY ... TO STDOUT (FORMAT binary)``, fast.

The export streams a version's stored renderings, about a million rows of about a kilobyte. Two
costs dominate once the rows are in one statement:

- **The server's output function.** Text and CSV output inspect every byte for characters to
  escape or quote; binary output sends each value as it is stored.
- **Per-row client overhead.** libpq hands over one row per call. psycopg's ``Copy`` iterator
  wraps every call in a generator and a wait loop (a few microseconds a row); here the rows are
  pulled from libpq in a tight loop, and the client waits on the socket only when libpq has no
  complete row buffered. psycopg still starts and ends the statement.

Binary COPY framing: an 11-byte signature plus two int32 (flags, header extension length) before
the first row; each row is an int16 field count and, per field, an int32 length (-1 for NULL)
and the bytes; an int16 -1 ends the data.
"""

from __future__ import annotations

import selectors
from collections.abc import Iterator
from typing import Any

from psycopg import errors, pq

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = len(SIGNATURE) + 8
ROW_PREFIX = 6  # int16 field count + int32 length of the one field
TRAILER = b"\xff\xff"


class EmptyValue(ValueError):
    """A NULL or empty value where the caller promised a non-empty one in every row."""


def copy_joined(
    cursor: Any, sql: str, params: list[Any], separator: bytes, block_size: int
) -> Iterator[tuple[bytes, int]]:
    """The values of ``COPY (SELECT <one column> ...) TO STDOUT (FORMAT binary)``, joined.

    Yields ``(block, rows)``: the values of ``rows`` consecutive rows joined by ``separator``,
    about ``block_size`` bytes a block. ``cursor`` is a psycopg cursor (Django's
    ``cursor.cursor``). Every value must be non-empty: a NULL or empty one raises EmptyValue.
    """
    # psycopg's Copy sends the statement and, should this generator stop early, cancels it and
    # drains the connection. On a normal end it leaves the COPY's final result to the reader.
    with cursor.copy(sql, params):
        values: list[memoryview] = []
        size = 0
        first = True
        for data in _pull(cursor.connection.pgconn, cursor.connection.info.encoding):
            if first:
                if bytes(data[: len(SIGNATURE)]) != SIGNATURE:
                    raise ValueError("not a binary COPY stream")
                data = data[HEADER:]
                first = False
            length = len(data)
            if length <= ROW_PREFIX:
                if length == len(TRAILER):
                    continue  # the end marker
                raise EmptyValue("a row without a value")
            values.append(data[ROW_PREFIX:])
            size += length
            if size >= block_size:
                yield separator.join(values), len(values)
                values, size = [], 0
        if values:
            yield separator.join(values), len(values)


def _pull(pgconn: Any, encoding: str) -> Iterator[memoryview]:
    """Every data message of the COPY in progress, straight from libpq; then its final result."""
    get = pgconn.get_copy_data
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_READ)

        def wait() -> None:
            selector.select()  # without the GIL: the compressing thread runs meanwhile
            pgconn.consume_input()

        while True:
            size, data = get(1)  # non-blocking: 0 means no complete row buffered yet
            if size > 0:
                yield data
            elif size == 0:
                wait()
            else:
                break
        # The data is over (or the statement failed): collect the outcome without blocking.
        failure = None
        while True:
            while pgconn.is_busy():
                wait()
            result = pgconn.get_result()
            if result is None:
                break
            if result.status != pq.ExecStatus.COMMAND_OK and failure is None:
                failure = errors.error_from_result(result, encoding=encoding)
    if failure is not None:
        raise failure
