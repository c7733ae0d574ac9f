"""The client socket's deadline (serving/web_worker.py), on real loopback TCP connections.

The deadline bounds each wait for the client, not a whole answer: a client that reads steadily,
however slowly, gets everything; one that stops reading is reset after the deadline; one that
stops sending leaves nothing for gunicorn's graceful close to wait for. The live behaviour
(gunicorn's threads freed, /healthz answering) is in tests/faults/test_stalled_clients.py.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from serving.web_worker import ClientSocket

DEADLINE = 0.4
BUFFER = 8192


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the server's side of a connection, as the worker makes it; the client's side), with
    small buffers so that a few hundred kB fill them."""
    monkeypatch.setattr(ClientSocket, "deadline_seconds", DEADLINE)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    server = ClientSocket.adopt(server)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def read_steadily(sock: socket.socket, total: int, received: bytearray) -> None:
    """Read ``total`` bytes, 8 kB every 20 ms (400 kB/s): never a pause near the deadline."""
    while len(received) < total:
        try:
            chunk = sock.recv(BUFFER)
        except OSError:  # the test is over and closed it
            return
        if not chunk:
            return
        received += chunk
        time.sleep(0.02)


def test_the_deadline_is_the_kernels_and_the_socket_stays_blocking(pair) -> None:
    server, _ = pair
    assert isinstance(server, ClientSocket)
    assert server.gettimeout() is None  # no poll before each read and write
    for option in (socket.SO_SNDTIMEO, socket.SO_RCVTIMEO):
        seconds, micros = struct.unpack("ll", server.getsockopt(socket.SOL_SOCKET, option, 16))
        assert seconds + micros / 1e6 == pytest.approx(DEADLINE, abs=0.01)


def test_a_client_that_reads_steadily_gets_the_whole_answer_however_long_it_takes(pair) -> None:
    server, client = pair
    answer = bytes(range(256)) * 4096  # 1 MiB: one COPY block of a limit=0 stream
    received = bytearray()
    reader = threading.Thread(target=read_steadily, args=(client, len(answer), received))
    started = time.monotonic()
    reader.start()
    server.sendall(answer)
    reader.join(30)
    took = time.monotonic() - started
    assert bytes(received) == answer
    assert took > 3 * DEADLINE  # one sendall far longer than the deadline: the deadline is per wait


def test_a_client_that_stops_reading_is_reset_after_the_deadline(pair) -> None:
    server, client = pair
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.sendall(bytes(4 << 20))
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 2
    server.close()  # as gunicorn does next
    client.settimeout(5)
    with pytest.raises(ConnectionResetError):
        while client.recv(1 << 16):
            pass


def test_a_client_that_stops_sending_leaves_nothing_to_wait_for(pair) -> None:
    server, client = pair
    client.sendall(b"GET / HTTP/1.1\r\nHost: exam")
    assert server.recv(1024).startswith(b"GET / HTTP/1.1")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.recv(1024)
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 2
    # gunicorn's graceful close reads until the client closes, up to 2 s: now it reads the end at once.
    server.settimeout(2)
    started = time.monotonic()
    assert server.recv(1024) == b""
    assert time.monotonic() - started < 0.5


def test_a_file_sent_with_sendfile_has_the_same_deadline(pair, tmp_path) -> None:
    """A download from the filesystem storage: Python's sendfile() would wait without end."""
    server, client = pair
    archive = tmp_path / "archive.tgz"
    archive.write_bytes(bytes(4 << 20))
    started = time.monotonic()
    with archive.open("rb") as file, pytest.raises(TimeoutError):
        server.sendfile(file)
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 2


def test_a_client_that_reads_a_file_steadily_gets_all_of_it(pair, tmp_path) -> None:
    server, client = pair
    archive = tmp_path / "archive.tgz"
    archive.write_bytes(bytes(range(256)) * 2048)  # 512 kB
    received = bytearray()
    reader = threading.Thread(target=read_steadily, args=(client, 512 * 1024, received))
    reader.start()
    with archive.open("rb") as file:
        assert server.sendfile(file) == 512 * 1024
    reader.join(30)
    assert bytes(received) == archive.read_bytes()
    assert server.gettimeout() is None  # blocking again, the kernel's deadline in force


def test_a_request_head_sent_a_byte_at_a_time_must_arrive_within_the_deadline_in_all(pair) -> None:
    """Each byte inside the deadline, the whole head not: the worker sets ``head_due`` when a
    thread takes the connection, and clears it once the head is in."""
    server, client = pair
    stop = threading.Event()

    def trickle() -> None:
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
            if stop.wait(DEADLINE / 4):
                return
            try:
                client.send(bytes([byte]))
            except OSError:
                return

    sender = threading.Thread(target=trickle)
    sender.start()
    server.head_due = time.monotonic() + DEADLINE
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="to send a request's head"):
            while True:
                server.recv(1024)
        assert DEADLINE <= time.monotonic() - started < 2 * DEADLINE + 1
    finally:
        stop.set()
        sender.join(5)


def test_after_the_head_a_slow_body_is_bound_only_per_wait(pair) -> None:
    server, client = pair
    server.head_due = None
    received = bytearray()
    for _ in range(2 * int(1 / DEADLINE) + 4):  # well past the deadline in all
        client.send(b"x")
        received += server.recv(1024)
        time.sleep(DEADLINE / 2)
    assert len(received) == 2 * int(1 / DEADLINE) + 4
