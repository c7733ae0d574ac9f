"""Clients that stop reading an answer, stop half-way through a request, or send its head a byte at
a time do not wedge the API.

Real gunicorn with 2 workers x 2 threads: 4 stuck clients hold every thread. Stock gthread writes
and reads its client sockets with no timeout, and held them as long as the clients stayed
connected, ``/healthz`` included (ocl_export/web_worker.py). Here ``GUNICORN_CLIENT_TIMEOUT`` is
2 s. The stuck clients are raw sockets, with a receive buffer as small as the kernel allows, that
ask for the CIEL subset's whole version (8.7 MB, far beyond what the socket buffers hold) and then
read nothing.
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


def test_clients_that_stop_reading_are_dropped_and_the_service_answers_again(stack: LiveStack) -> None:
    request = f"GET {WHOLE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    stuck = [stuck_client(stack, request) for _ in range(WORKERS * THREADS)]
    try:
        # Every thread is stuck writing to a client that does not read, until the deadline.
        waited = seconds_until_healthz_answers(stack, within=DEADLINE + 8)
        assert waited >= DEADLINE / 2, "the stuck clients never held the threads: the test proves nothing"
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
    # One warning line each, naming the request and the client.
    dropped = [line for line in stack.log("web").splitlines() if f"took nothing for {DEADLINE} s" in line]
    assert len(dropped) == WORKERS * THREADS
    assert all("[WARNING]" in line and f"GET {VERSION}: the client 127.0.0.1:" in line for line in dropped)
    assert dropped_clients(stack, "stopped_reading") == WORKERS * THREADS


def test_clients_that_stop_half_way_through_a_request_are_dropped(stack: LiveStack) -> None:
    half = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Still-Typ"
    stuck = [stuck_client(stack, half) for _ in range(WORKERS * THREADS)]
    try:
        waited = seconds_until_healthz_answers(stack, within=DEADLINE + 8)
        assert waited >= DEADLINE / 2, "the half-sent requests never held the threads: the test proves nothing"
        assert seconds_until_healthz_answers(stack, within=2) < 1
        for sock in stuck:
            received, _ = read_to_end(sock)
            assert received == b""  # no answer to a request that never ended
    finally:
        for sock in stuck:
            sock.close()
    # One warning line each, not an error with a traceback.
    log = stack.log("web")
    dropped = [line for line in log.splitlines() if f"sent nothing for {DEADLINE} s; connection closed" in line]
    assert len(dropped) == WORKERS * THREADS and all("[WARNING]" in line for line in dropped)
    assert "Socket error processing request" not in log and "Traceback" not in log
    assert dropped_clients(stack, "stopped_sending") == WORKERS * THREADS


def test_clients_that_send_a_request_head_a_byte_at_a_time_are_dropped(stack: LiveStack) -> None:
    """Each byte well inside the deadline (every 0.5 s): only the head's deadline in all ends it."""
    stop = threading.Event()
    stuck = [stuck_client(stack, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(WORKERS * THREADS)]

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
        waited = seconds_until_healthz_answers(stack, within=2 * DEADLINE + 8)
        assert waited >= DEADLINE / 2, "the trickling clients never held the threads: the test proves nothing"
        assert seconds_until_healthz_answers(stack, within=2) < 1
        # Every one of them is dropped, the last as soon as a thread took it, while still trickling.
        wait_until(lambda: len(head_timeouts(stack)) == len(stuck), 2 * DEADLINE + 5, what="every one dropped")
        assert all("[WARNING]" in line for line in head_timeouts(stack))
        assert dropped_clients(stack, "slow_head") == WORKERS * THREADS
    finally:
        stop.set()
        for sender in senders:
            sender.join(5)
        for sock in stuck:
            sock.close()


def head_timeouts(stack: LiveStack) -> list[str]:
    return [line for line in stack.log("web").splitlines() if "to send a request's head" in line]
