"""Connections a client opens at once are spread over gunicorn's workers (serving.balanced_worker).

With stock gthread workers, 16 connections opened together often all went to one worker, which
then served them on one core. Which worker holds a connection is read from the operating system
(each worker's sockets), not from anything the service says about itself.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.live.stack import LiveStack, wait_until

pytestmark = pytest.mark.live

WORKERS = 4
THREADS = 2
CONNECTIONS = 16


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with LiveStack("balance", web_workers=WORKERS, threads=THREADS, storage="filesystem") as stack:
        yield stack


def test_connections_opened_together_are_spread_over_the_workers(stack):
    wait_until(lambda: len(stack.descendants("web")) == WORKERS, 30, what="the web workers")
    for _ in range(5):
        sockets = [socket.create_connection(("127.0.0.1", stack.web_port)) for _ in range(CONNECTIONS)]
        try:
            ports = {sock.getsockname()[1] for sock in sockets}
            wait_until(
                lambda ports=ports: sum(stack.web_connections(ports).values()) == CONNECTIONS,
                10,
                what="every connection accepted",
            )
            held = stack.web_connections(ports)
            fair = CONNECTIONS // WORKERS
            assert max(held.values()) <= 2 * fair, held
            assert len(held) >= WORKERS - 1, held
        finally:
            for sock in sockets:
                sock.close()
