"""A loopback HTTP server that answers from a script: the protocol cases of an upstream server.

Real upstreams (tests/live) cover the happy paths end to end; the answers that are hard to get
from a real server on cue (a 208, a Retry-After, a body cut half-way, a 500 then a recovery) come
from here, over a real socket, so the client under test runs unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # send a Content-Length for the whole body, then close after this many bytes


@dataclass
class Script:
    """Answers per path prefix, each a list consumed in order (the last one repeats); a key
    ending in a space answers that path alone (no query string)."""

    answers: dict[str, list[Answer]]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def answer(self, method: str, path: str, headers: dict[str, str]) -> Answer:
        self.seen.append((method, path, headers))
        for prefix in sorted(self.answers, key=len, reverse=True):
            key_method, _, key_path = prefix.partition(" ")
            exact = key_path.endswith(" ") and path == key_path[:-1]
            if method == key_method and (exact or path.startswith(key_path)):
                queue = self.answers[prefix]
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return Answer(404, b'{"detail": "Not found."}', {"Content-Type": "application/json"})


@contextmanager
def scripted_server(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            answer = script.answer(self.command, self.path, dict(self.headers))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.status not in (204, 304):
                self.send_header("Content-Length", str(len(answer.body)))
            if answer.cut_after is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if answer.cut_after is not None:
                self.wfile.write(answer.body[: answer.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            if answer.status not in (204, 304):
                self.wfile.write(answer.body)

        do_GET = do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
