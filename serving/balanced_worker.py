"""gunicorn's gthread worker, taking no more than its share of new connections at once.

Every worker polls the one listening socket and the first to call ``accept`` gets the connection.
A client that opens many keep-alive connections at once (a proxy's upstream pool, a sync script
with a session pool, a load generator) often saw all of them taken by one worker: measured with
32 connections and 4 workers, one run in three left three workers idle and served everything
from one process, one core (1,400 req/s where a spread took 4,000). Kept answers make requests
CPU work under each process's GIL, so where a connection lands decides the throughput.

So a worker that already holds as many connections as it has threads stops accepting for a few
milliseconds after each accept, which lets an idle worker take the next one. When every worker
is that busy, each still accepts after the pause: no connection waits longer than that for it.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

PAUSE_SECONDS = 0.005


class BalancedThreadWorker(ThreadWorker):
    _hold_until = 0.0

    def accept(self, listener: Any) -> None:
        super().accept(listener)
        if self.nr_conns >= self.cfg.threads:
            self._hold_until = time.monotonic() + PAUSE_SECONDS

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        remaining = self._hold_until - time.monotonic()
        if remaining > 0 and self._accepting:
            self.set_accept_enabled(False)  # the run loop enables it again before the next wait
            timeout = min(timeout, remaining)
        super().wait_for_and_dispatch_events(timeout)
