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

from prometheus_client import Counter

T = TypeVar("T")

# Labelled, so each value is made on first use, after the service's metrics module has chosen
# how processes share them (see observability.metrics); /metrics shows them with the rest.
LOOKUPS = Counter("ocl_read_cache_lookups", "Answers looked up in a web process's store, by outcome.", ["outcome"])
EMPTIED = Counter(
    "ocl_read_cache_emptied",
    "Times a web process's store was emptied: a change was notified, or the listener connected or lost its connection.",
    ["cause"],
)


class Store:
    """A bounded LRU of answers, valid for one generation of the database's state."""

    def __init__(self, entries: int, max_age: float) -> None:
        self.entries = entries
        self.max_age = max_age
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
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

    def ticket(self) -> int | None:
        """The generation a read starts in; None when nothing may be kept now."""
        return self._generation if self._listening and self.entries > 0 else None

    def get(self, key: Hashable) -> Any | None:
        if not self._listening:
            return None
        pending = self.pending
        if pending is not None and pending():
            self.invalidate()
            return None
        with self._lock:
            found = self._items.get(key)
            if found is None or time.monotonic() - found[0] > self.max_age:
                outcome = "miss"
            else:
                self._items.move_to_end(key)
                outcome = "hit"
        LOOKUPS.labels(outcome).inc()
        return found[1] if outcome == "hit" else None

    def put(self, key: Hashable, value: Any, ticket: int | None) -> None:
        """Keep ``value`` if the database has not changed since ``ticket`` was taken."""
        if ticket is None:
            return
        with self._lock:
            if ticket != self._generation or not self._listening:
                return
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

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
            self._items.clear()
        EMPTIED.labels("change").inc()

    def set_listening(self, listening: bool) -> None:
        """The listener connected (every change from now on will be heard) or lost its connection
        (changes may go unheard): either way, what is kept now may be stale."""
        with self._lock:
            self._generation += 1
            self._items.clear()
            was, self._listening = self._listening, listening
        if listening != was:
            EMPTIED.labels("connected" if listening else "connection_lost").inc()

    def __len__(self) -> int:
        return len(self._items)


_store: Store | None = None


def get_store() -> Store:
    """This process's store, made from the settings on first use."""
    global _store
    if _store is None:
        from django.conf import settings

        _store = Store(settings.READ_CACHE_ENTRIES, settings.READ_CACHE_MAX_AGE)
    return _store
