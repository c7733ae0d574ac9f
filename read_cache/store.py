"""Answers kept in this process until the database says something changed.

A read of a terminology is mostly the same few answers over and over (every OpenMRS server polls
its version's export; a browser reads the same concepts), and every one of them is a function of
rows in PostgreSQL. So this process keeps recent answers, and drops all of them whenever any of
those rows change: a trigger on each table NOTIFYs at commit (``read_cache.triggers``), and one
thread of each process LISTENs (``read_cache.listener``). The rule a reader can rely on:

- an answer is never kept across a committed change; at most it is served for the moments the
  notification takes to reach this process (milliseconds);
- while the listener is not connected (starting, PostgreSQL restarting, a dropped socket), nothing
  is kept and nothing is served from here: every request reads the database;
- an answer is not kept longer than READ_CACHE_MAX_AGE seconds however quiet the database is (a
  bound for what no trigger sees, such as a table added without one).

The store is bounded in bytes, not in answers (``READ_CACHE_BYTES`` a process): a bound by count
let one anonymous client grow every web process by gigabytes, 10,000 answers of up to 256 KiB
each. Each entry is charged what it really holds: its key, its value and the store's own
bookkeeping (:func:`footprint` walks the objects; ``tests/test_read_cache_store.py`` holds the
charge against what ``tracemalloc`` sees allocated). The least recently used entries go first
until the new one fits; one that would not fit in the whole budget is not kept.

A request that read the database before a change and finishes after it must not store what it
read: :meth:`Store.ticket` is taken before the read, and :meth:`Store.put` keeps the value only if
no notification (and no reconnection) came in between.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

from .footprint import BOOKKEEPING, footprint

T = TypeVar("T")

# Labelled, so each value is made on first use, after the service's metrics module has chosen
# how processes share them (see observability.metrics); /metrics shows them with the rest.
LOOKUPS = Counter("ocl_read_cache_lookups", "Answers looked up in a web process's store, by outcome.", ["outcome"])
EMPTIED = Counter(
    "ocl_read_cache_emptied",
    "Times a web process's store was emptied: a change was notified, or the listener connected or lost its connection.",
    ["cause"],
)
EVICTED = Counter(
    "ocl_read_cache_evictions",
    "Entries a web process's store let go one by one: to stay within READ_CACHE_BYTES, or past READ_CACHE_MAX_AGE.",
    ["cause"],
)
# The bound is a process's, so /metrics shows the fullest live process's figure (with
# PROMETHEUS_MULTIPROC_DIR; an exited worker's is dropped by deploy/gunicorn.conf.py). Not one
# series a process: prometheus_client's "liveall" reads the pid from the file's name, and ours
# are named host_pid (observability.metrics), so every process would show as pid="".
HELD = Gauge(
    "ocl_read_cache_held",
    "What the fullest live web process's store holds now: bytes charged, or answers.",
    ["measure"],
    multiprocess_mode="livemax",
)


class Store:
    """A least-recently-used map of answers within a byte budget, valid for one generation of the
    database's state."""

    def __init__(self, budget: int, max_age: float) -> None:
        self.budget = budget
        self.max_age = max_age
        self._lock = threading.Lock()
        # key -> (when kept, value, bytes charged)
        self._items: OrderedDict[Hashable, tuple[float, Any, int]] = OrderedDict()
        self._bytes = 0
        self._generation = 0
        self._listening = False
        # Set by the listener: True while a notification may be waiting unread on its socket.
        # Checked before each answer is served, so a request that arrives just after a change
        # (the client that made it, asking again through another process) does not win the race
        # against the listener thread reading the notification.
        self.pending: Callable[[], bool] | None = None

    @property
    def listening(self) -> bool:
        return self._listening

    @property
    def bytes(self) -> int:
        """The bytes charged for what is kept now."""
        return self._bytes

    def ticket(self) -> int | None:
        """The generation a read starts in; None when nothing may be kept now."""
        return self._generation if self._listening and self.budget > 0 else None

    def get(self, key: Hashable) -> Any | None:
        if not self._listening:
            return None
        pending = self.pending
        if pending is not None and pending():
            self.invalidate()
            return None
        expired = False
        with self._lock:
            found = self._items.get(key)
            if found is None:
                outcome = "miss"
            elif time.monotonic() - found[0] > self.max_age:
                outcome, expired = "miss", True
                self._bytes -= self._items.pop(key)[2]
                self._published()
            else:
                self._items.move_to_end(key)
                outcome = "hit"
        LOOKUPS.labels(outcome).inc()
        if expired:
            EVICTED.labels("expired").inc()
        return found[1] if outcome == "hit" else None

    def put(self, key: Hashable, value: Any, ticket: int | None) -> None:
        """Keep ``value`` if the database has not changed since ``ticket`` was taken, charged what
        it and its key hold (evicting the least recently used to make room)."""
        if ticket is None:
            return
        charge = footprint(key, value) + BOOKKEEPING
        if charge > self.budget:
            return
        evicted = 0
        with self._lock:
            if ticket != self._generation or not self._listening:
                return
            replaced = self._items.pop(key, None)
            if replaced is not None:
                self._bytes -= replaced[2]
            while self._items and self._bytes + charge > self.budget:
                self._bytes -= self._items.popitem(last=False)[1][2]
                evicted += 1
            self._items[key] = (time.monotonic(), value, charge)
            self._bytes += charge
            self._published()
        if evicted:
            EVICTED.labels("budget").inc(evicted)

    def remember(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``'s value, kept under ``key`` when it is not None."""
        found = self.get(key)
        if found is not None:
            return found
        ticket = self.ticket()
        value = compute()
        if value is not None:
            self.put(key, value, ticket)
        return value

    def invalidate(self) -> None:
        """Something changed: forget everything, and refuse what reads begun before now bring back."""
        with self._lock:
            self._generation += 1
            self._clear()
        EMPTIED.labels("change").inc()

    def set_listening(self, listening: bool) -> None:
        """The listener connected (every change from now on will be heard) or lost its connection
        (changes may go unheard): either way, what is kept now may be stale."""
        with self._lock:
            self._generation += 1
            self._clear()
            was, self._listening = self._listening, listening
        if listening != was:
            EMPTIED.labels("connected" if listening else "connection_lost").inc()

    def _clear(self) -> None:
        self._items.clear()
        self._bytes = 0
        self._published()

    def _published(self) -> None:
        """The figures for /metrics (under the lock, so two threads cannot publish out of order)."""
        HELD.labels("bytes").set(self._bytes)
        HELD.labels("answers").set(len(self._items))

    def __len__(self) -> int:
        return len(self._items)


_store: Store | None = None


def get_store() -> Store:
    """This process's store, made from the settings on first use."""
    global _store
    if _store is None:
        from django.conf import settings

        _store = Store(settings.READ_CACHE_BYTES, settings.READ_CACHE_MAX_AGE)
    return _store
