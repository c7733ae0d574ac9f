"""The API's gunicorn worker: the balanced gthread worker, with a deadline on every client socket.

A gthread worker answers each request on one of a few threads (4 per process by default) and
holds that thread until the whole answer has gone out. gunicorn reads and writes its client
sockets in blocking mode with no timeout. So a client that stops reading a long answer holds its
thread for as long as the client stays connected: a whole version streamed with ``limit=0``, or
an archive downloaded from the filesystem storage. So does a client that stops halfway through
sending a request. Measured before this module, 4 sockets that asked for the CIEL subset's
``limit=0`` and then read nothing left 2 workers × 2 threads answering nothing at all, ``/healthz``
included, for as long as the sockets stayed open. A handful of stuck clients (or one hostile one)
would wedge the web tier.

Here a client socket in a worker thread waits at most ``GUNICORN_CLIENT_TIMEOUT`` seconds (60, as
nginx's ``send_timeout``) for the client:
- to take the next part of the answer;
- to send the next part of the request;
- and, in all, to send a request's head (its line and headers), which a client could otherwise
  send a byte at a time, each just inside the deadline.

Past that, the connection is closed, its thread is free again, and a warning says who was dropped.
A client that keeps reading, however slowly, is never cut off: past the head, the deadline is per
wait.

How: every connection's socket becomes a :class:`ClientSocket` when the worker first takes it,
with the deadline set in the kernel; gunicorn's own reads and writes then end at the deadline,
``sendfile`` included, with no change to gunicorn's code paths. Idle keep-alive connections wait
in gunicorn's poller, not in a thread, and keep their own limit (``GUNICORN_KEEPALIVE``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from typing import Any

from observability import metrics

from .balanced_worker import BalancedThreadWorker


def client_timeout() -> float:
    raw = os.environ.get("GUNICORN_CLIENT_TIMEOUT", "").strip()
    return float(raw) if raw else 60.0


class ClientTimeout(TimeoutError):
    """A client kept a worker thread waiting past the deadline (and its connection is ended)."""


class ClientTimeoutsAsWarnings(logging.Filter):
    """gunicorn logs a failed read of a request's head as an error with its traceback ("Socket
    error processing request."). A client that stopped sending is the client's doing, and one
    line says all of it: this turns those records into that line, at WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ClientTimeout):
            record.msg, record.args = "%s", (error,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


class ClientSocket(socket.socket):
    """A client connection's socket whose waits for the client end at a deadline.

    The deadline is the kernel's (``SO_SNDTIMEO``, ``SO_RCVTIMEO``), set once per connection: a
    blocking ``send`` or ``recv`` that waits that long fails with ``EAGAIN``, while the socket
    stays in blocking mode, so a request costs no system call more than before (Python's own
    socket timeouts poll before every read and write, which cost about a tenth of the request
    benchmark's rate in an A/B run).
    ``sendall`` waits up to the deadline per ``send``, so each time the client's window is full,
    not for the whole answer: a client reading a 1 MiB block of a ``limit=0`` stream at 10 KB/s
    is served; one that reads nothing for the deadline is not.
    """

    __slots__ = ("head_due",)
    deadline_seconds = client_timeout()
    head_due: float | None  # while a request's head is being read: when it must have arrived

    @classmethod
    def adopt(cls, sock: socket.socket) -> ClientSocket:
        """The connection's socket as a ClientSocket (the same descriptor), with the deadline."""
        seconds, fraction = divmod(cls.deadline_seconds, 1)
        deadline = struct.pack("ll", int(seconds), int(fraction * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, deadline)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, deadline)
        timeout = sock.gettimeout()
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.settimeout(timeout)
        adopted.head_due = None
        return adopted

    def recv(self, *args: Any) -> bytes:
        self._check_head_due()
        try:
            return super().recv(*args)
        except BlockingIOError as waited:
            raise self._stopped_sending("stopped_sending") from waited

    def recv_into(self, *args: Any) -> int:
        self._check_head_due()
        try:
            return super().recv_into(*args)
        except BlockingIOError as waited:
            raise self._stopped_sending("stopped_sending") from waited

    def _check_head_due(self) -> None:
        """A request's head (its line and headers, at most a few kB) must arrive within the
        deadline in all: a client that sends it a byte at a time, each just inside the deadline,
        would otherwise hold the thread for hours."""
        if self.head_due is not None and time.monotonic() > self.head_due:
            raise self._stopped_sending("slow_head")

    def send(self, *args: Any) -> int:
        try:
            return super().send(*args)
        except BlockingIOError as waited:
            raise self._stopped_reading() from waited

    def sendall(self, *args: Any) -> None:
        try:
            super().sendall(*args)
        except BlockingIOError as waited:
            raise self._stopped_reading() from waited

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """A file (an archive from the filesystem storage) sent with ``sendfile()``. Python's
        version waits without end for a blocking socket whose send timed out, so this one sends
        in timeout mode (a poll before each part: nothing, next to a file)."""
        self.settimeout(self.deadline_seconds)
        try:
            return super().sendfile(file, offset, count)
        except TimeoutError as waited:
            raise self._stopped_reading() from waited
        finally:
            with contextlib.suppress(OSError):
                self.setblocking(True)

    # gunicorn closes a socket after a failed request "gracefully": it sends its FIN, then waits
    # up to 2 s, on the worker's main thread (where no request is served meanwhile), for the
    # client to send anything or close. A client that has stopped would make it wait the 2 s.

    def _stopped_sending(self, reason: str) -> TimeoutError:
        """The client kept the request waiting past the deadline (``reason``: ``stopped_sending``
        or ``slow_head``): read no more, so that the graceful close's wait ends at once."""
        self.head_due = None  # the graceful close reads once more: it is to find the end, not this
        with contextlib.suppress(OSError):
            self.shutdown(socket.SHUT_RD)
        metrics.client_dropped(reason)
        what = (
            "sent nothing for {:g} s"
            if reason == "stopped_sending"
            else "took more than {:g} s to send a request's head"
        )
        return ClientTimeout(f"{self._peer()} {what.format(self.deadline_seconds)}; connection closed")

    def _stopped_reading(self) -> TimeoutError:
        """The client took nothing for the deadline: end the connection with a reset, and discard
        the unsent rest of the answer (the client is not to take a truncated answer for a whole
        one, and the kernel is not to keep offering it to a client that does not read)."""
        with contextlib.suppress(OSError):
            self.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.shutdown(socket.SHUT_RDWR)
        metrics.client_dropped("stopped_reading")
        return ClientTimeout(f"{self._peer()} took nothing for {self.deadline_seconds:g} s; connection reset")

    def _peer(self) -> str:
        try:
            host, port = self.getpeername()[:2]
        except (OSError, ValueError):
            return "the client"
        return f"the client {host}:{port}"


class WebWorker(BalancedThreadWorker):
    def enqueue_req(self, conn: Any) -> None:
        # Runs on the worker's main thread for a new connection and again for each request on a
        # kept-alive one: only the first time changes anything.
        if type(conn.sock) is socket.socket:
            conn.sock = ClientSocket.adopt(conn.sock)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        # A thread takes the connection to read a request's head (gunicorn hands it over once
        # the first bytes are there, or a kept-alive connection's next request is).
        if isinstance(conn.sock, ClientSocket):
            conn.sock.head_due = time.monotonic() + ClientSocket.deadline_seconds
        return super().handle(conn)

    def init_process(self) -> None:
        self.log.error_log.addFilter(ClientTimeoutsAsWarnings())
        super().init_process()

    def handle_request(self, req: Any, conn: Any) -> bool:
        if isinstance(conn.sock, ClientSocket):
            conn.sock.head_due = None  # the head is in; from here on each wait has the deadline
        try:
            return super().handle_request(req, conn)
        except ClientTimeout as timeout:
            self.log.warning("%s %s: %s", req.method, req.path, timeout)
            return False
