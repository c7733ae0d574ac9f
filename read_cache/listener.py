"""One thread per web process that LISTENs for the triggers' notifications.

The thread has its own connection (autocommit, TCP keepalives, never Django's: request threads
must not wait on it). It marks the store listening only once LISTEN has succeeded, drops every
kept answer on each notification, and on any failure (PostgreSQL restarted, the socket went
quiet) marks the store not listening, which serves nothing from it, then reconnects with a
growing pause. A connection that merely stays quiet is checked every few seconds with a query.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from functools import partial

from django.db import connections

from .store import Store, get_store
from .triggers import CHANNEL

logger = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
MAX_PAUSE_SECONDS = 30.0
_started_in: int | None = None
_lock = threading.Lock()


def start() -> None:
    """Start this process's listener once (again in a forked child, whose parent's thread is gone)."""
    global _started_in
    with _lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
    thread = threading.Thread(target=run, args=(get_store(),), name="read-cache-listener", daemon=True)
    thread.start()


def connect() -> object:
    import psycopg

    params = connections["default"].get_connection_params()
    params.update(autocommit=True, keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
    params.pop("cursor_factory", None)
    return psycopg.connect(**params)


def readable(fd: int) -> bool:
    """Whether bytes wait on the listener's socket; True once it is closed (assume a change)."""
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def listen(store: Store) -> None:
    """Until the connection fails: every notification empties the store."""
    with connect() as conn:  # type: ignore[attr-defined]
        conn.execute(f"LISTEN {CHANNEL}")
        store.pending = partial(readable, conn.fileno())
        store.set_listening(True)
        logger.info("read cache: listening for changes")
        while True:
            for _ in conn.notifies(timeout=CHECK_SECONDS, stop_after=1):
                store.invalidate()
            conn.execute("SELECT 1")  # raises once the server or the network has gone


def run(store: Store) -> None:
    pause = 0.5
    while True:
        began = time.monotonic()
        try:
            listen(store)
        except Exception as exc:  # noqa: BLE001 - any failure means changes may go unheard
            if store.listening:
                logger.warning("read cache: stopped listening (%s); reading the database until back", exc)
        store.set_listening(False)
        store.pending = None
        if time.monotonic() - began > MAX_PAUSE_SECONDS:
            pause = 0.5  # it had been up a while: come back quickly
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_SECONDS)
