"""Clients that stop reading an answer, stop half-way through a request, or send its head a byte at
a time do not wedge the API.

Real gunicorn with 2 workers x 2 threads, and stuck clients opened until each worker holds at
least 2 of them (read from the operating system), so that every thread is taken. Stock gthread
reads and writes its client sockets with no timeout, and kept every thread, ``/healthz``
included, for as long as the clients stayed connected (serving/web_worker.py). Here
``GUNICORN_CLIENT_TIMEOUT`` is 2 s. The stuck clients are raw sockets with a receive buffer as
small as the kernel allows; the ones that stop reading ask for the CIEL subset's whole version
(8.7 MB, far beyond what the socket buffers hold).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.live]

WORKERS = 2
THREADS = 2
DEADLINE = 2
VERSION = "/orgs/CIEL/sources/CIEL/v2015-06-22/"
WHOLE = f"{VERSION}?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"


TOKEN = "stalled-metrics-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    env = {
        "GUNICORN_CLIENT_TIMEOUT": str(DEADLINE),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
        "METRICS_TOKEN": TOKEN,
    }
    with LiveStack("stalled", web_workers=WORKERS, threads=THREADS, storage="filesystem", env=env) as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIEL-subset-2015.tgz")
        yield stack


def dropped_clients(stack: LiveStack, reason: str) -> float:
    """``ocl_clients_dropped_total{reason=...}`` summed over the web workers, from /metrics."""
    response = requests.get(stack.url("/metrics"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "ocl_clients_dropped_total" and sample.labels.get("reason") == reason
    )


def stuck_client(stack: LiveStack, request: bytes) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stack.web_port))
    sock.sendall(request)
    return sock


def seconds_until_healthz_answers(stack: LiveStack, within: float) -> float:
    started = time.monotonic()
    response = requests.get(stack.url("/healthz"), timeout=within)
    assert response.status_code == 200
    return time.monotonic() - started


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """What the client received, and how the connection ended: "closed" or "reset"."""
    sock.settimeout(10)
    received = bytearray()
    try:
        while chunk := sock.recv(1 << 16):
            received += chunk
    except ConnectionResetError:
        return bytes(received), "reset"
    return bytes(received), "closed"


def occupy_every_thread(stack: LiveStack, request: bytes) -> list[socket.socket]:
    """Stuck clients, opened until every web worker holds at least THREADS of them: which worker
    takes a connection is the kernel's and gunicorn's choice, and a worker with fewer would keep a
    thread free (the test would prove nothing)."""
    stuck: list[socket.socket] = []
    while len(stuck) < 8 * WORKERS * THREADS:
        stuck.append(stuck_client(stack, request))
        ports = {sock.getsockname()[1] for sock in stuck}
        wait_until(lambda ports=ports: sum(stack.web_connections(ports).values()) == len(ports), 10, what="accepted")
        held = stack.web_connections(ports)
        if len(held) == WORKERS and min(held.values()) >= THREADS:
            return stuck
    raise AssertionError(f"{len(stuck)} connections did not reach every worker: {held}")


def logged(stack: LiveStack, phrase: str) -> list[str]:
    return [line for line in stack.log("web").splitlines() if phrase in line]


def all_dropped(stack: LiveStack, stuck: list[socket.socket], phrase: str) -> list[str]:
    """Wait until the log has a line with ``phrase`` for each stuck client (a worker takes the
    ones it holds beyond its threads one deadline after another), and return those lines."""
    rounds = len(stuck) // THREADS + 1
    wait_until(lambda: len(logged(stack, phrase)) >= len(stuck), rounds * DEADLINE + 10, what="every one dropped")
    return logged(stack, phrase)


def test_clients_that_stop_reading_are_dropped_and_the_service_answers_again(stack: LiveStack) -> None:
    request = f"GET {WHOLE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    stuck = occupy_every_thread(stack, request)
    try:
        # Every thread is stuck writing to a client that does not read, until the deadline.
        waited = seconds_until_healthz_answers(stack, within=len(stuck) * DEADLINE + 8)
        assert waited >= DEADLINE / 2, "the stuck clients never held the threads: the test proves nothing"
        # One warning line each, naming the request and the client, and a count in /metrics.
        dropped = all_dropped(stack, stuck, f"took nothing for {DEADLINE} s")
        assert len(dropped) == len(stuck)
        assert all("[WARNING]" in line and f"GET {VERSION}: the client 127.0.0.1:" in line for line in dropped)
        assert dropped_clients(stack, "stopped_reading") == len(stuck)
        # Afterwards the service answers at once, and the whole version still streams to a reader.
        assert seconds_until_healthz_answers(stack, within=2) < 1
        whole = requests.get(stack.url(WHOLE), timeout=30)
        assert whole.status_code == 200 and len(whole.json()["concepts"]) == 1946
        # Each stuck client got part of the answer, then a reset: not an answer that looks whole.
        for sock in stuck:
            received, ending = read_to_end(sock)
            assert received.startswith(b"HTTP/1.1 200 OK")
            assert ending == "reset" and not received.endswith(b"0\r\n\r\n")
    finally:
        for sock in stuck:
            sock.close()


def test_clients_that_stop_half_way_through_a_request_are_dropped(stack: LiveStack) -> None:
    stuck = occupy_every_thread(stack, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Still-Typ")
    try:
        waited = seconds_until_healthz_answers(stack, within=len(stuck) * DEADLINE + 8)
        assert waited >= DEADLINE / 2, "the half-sent requests never held the threads: the test proves nothing"
        # One warning line each, not an error with a traceback.
        dropped = all_dropped(stack, stuck, f"sent nothing for {DEADLINE} s; connection closed")
        assert len(dropped) == len(stuck) and all("[WARNING]" in line for line in dropped)
        assert not logged(stack, "Socket error processing request") and not logged(stack, "Traceback")
        assert dropped_clients(stack, "stopped_sending") == len(stuck)
        assert seconds_until_healthz_answers(stack, within=2) < 1
        for sock in stuck:
            received, _ = read_to_end(sock)
            assert received == b""  # no answer to a request that never ended
    finally:
        for sock in stuck:
            sock.close()


def test_clients_that_send_a_request_head_a_byte_at_a_time_are_dropped(stack: LiveStack) -> None:
    """Each byte well inside the deadline (every 0.5 s): only the head's deadline in all ends it."""
    stop = threading.Event()
    stuck = occupy_every_thread(stack, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    def trickle(sock: socket.socket) -> None:
        while not stop.wait(0.5):
            try:
                sock.send(b"X-Slow: a\r\n")
            except OSError:
                return

    senders = [threading.Thread(target=trickle, args=(sock,)) for sock in stuck]
    for sender in senders:
        sender.start()
    try:
        waited = seconds_until_healthz_answers(stack, within=2 * len(stuck) * DEADLINE + 8)
        assert waited >= DEADLINE / 2, "the trickling clients never held the threads: the test proves nothing"
        # Every one of them is dropped while still trickling, one warning line each.
        dropped = all_dropped(stack, stuck, "to send a request's head")
        assert len(dropped) == len(stuck) and all("[WARNING]" in line for line in dropped)
        assert dropped_clients(stack, "slow_head") == len(stuck)
        assert seconds_until_healthz_answers(stack, within=2) < 1
    finally:
        stop.set()
        for sender in senders:
            sender.join(5)
        for sock in stuck:
            sock.close()
