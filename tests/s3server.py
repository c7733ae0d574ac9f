"""A moto S3 server in its own process on a free loopback port: S3 over real HTTP for the test
suite and the export benchmark (never an in-process mock)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests

IN_MEMORY_BYTES = 1 << 30


def start_moto(timeout: float = 30, attempts: int = 3, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server; returns its process and endpoint URL once it answers.

    The free port is found by binding and releasing it, so another process may take it before
    the server binds: a server that exits at start is tried again on another port. ``port`` asks
    for a given one (a server brought back where its clients expect it); it is tried again while
    the old server's socket lets go of it."""
    failures = []
    for _ in range(attempts):
        started = _start_once(timeout, port)
        if isinstance(started, tuple):
            return started
        failures.append(started)
    raise RuntimeError("the moto S3 server did not start:\n" + "\n".join(failures))


def _start_once(timeout: float, port: int | None = None) -> tuple[subprocess.Popen, str] | str:
    """The process and endpoint, or why it did not answer (the end of its output)."""
    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    # moto spools every object and part above ~5 MiB to a temporary file and copies it back on
    # each read; in memory instead, the server costs the exporter under test less of the CPU.
    env = {**os.environ, "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(IN_MEMORY_BYTES)}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(endpoint, timeout=1)
            return process, endpoint
        except requests.RequestException:  # refused, or accepted but not answering yet (a loaded machine)
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                log.seek(0)
                output = log.read()[-2000:].decode(errors="replace")
                return f"port {port}, exit code {process.returncode}: {output.strip() or '(no output)'}"
            time.sleep(0.1)
