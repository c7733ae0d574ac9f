"""Rate limits counted across processes: two gunicorn workers over one Redis share one count.

A user's POSTs go alternately over two keep-alive connections that the operating system shows
held by two different workers, so a count kept per process would let through twice the limit.
The stack runs the production default (30 an hour): the 31st POST and every later one get 429.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

pytestmark = pytest.mark.live

EXPORT = "/orgs/CIELTEST/sources/CIELTEST/v1/export/"
DEFAULT_LIMIT = 30


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with LiveStack("ratelimits", web_workers=2, storage="filesystem") as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIELTEST-2015.zip", "--version", "v1")
        yield stack


def worker_of(stack: LiveStack, conn: http.client.HTTPConnection) -> int | None:
    """The pid of the gunicorn worker holding this connection, read from the operating system."""
    port = conn.sock.getsockname()[1] if conn.sock is not None else None
    held = stack.web_connections({port}) if port is not None else {}
    return next(iter(held), None)


def connections_on_two_workers(stack: LiveStack) -> dict[int, http.client.HTTPConnection]:
    """One open keep-alive connection on each of the two workers."""
    pinned: dict[int, http.client.HTTPConnection] = {}

    def another() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", stack.web_port, timeout=30)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        pid = wait_until(lambda: worker_of(stack, conn), 5, what="the connection's worker")
        if pid in pinned:
            conn.close()
        else:
            pinned[pid] = conn
        return len(pinned) == 2

    wait_until(another, 60, step=0, what="connections on both workers")
    return pinned


def post(conn: http.client.HTTPConnection, token: str) -> http.client.HTTPResponse:
    conn.request("POST", EXPORT, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    return response


def test_a_users_posts_are_counted_once_across_two_web_processes(stack: LiveStack) -> None:
    token = stack.make_user("scripted", admin_of="CIELTEST")
    pinned = connections_on_two_workers(stack)
    answered_by: set[int] = set()
    statuses = []
    for number in range(40):
        conn = list(pinned.values())[number % 2]
        response = post(conn, token)
        statuses.append(response.status)
        answered_by.add(worker_of(stack, conn))
        if response.status == 429:
            assert 1 <= int(response.getheader("Retry-After")) <= 3600
            assert json.loads(response.body)["detail"].startswith("Request was throttled.")
    assert answered_by == set(pinned), "both workers answered, each on its own connection"
    assert 429 not in statuses[:DEFAULT_LIMIT]
    assert statuses[DEFAULT_LIMIT:] == [429] * (40 - DEFAULT_LIMIT)


def test_staff_are_not_limited(stack: LiveStack) -> None:
    token = stack.make_user("operator", staff=True)
    pinned = connections_on_two_workers(stack)
    statuses = {post(conn, token).status for _ in range(20) for conn in pinned.values()}
    assert 429 not in statuses
