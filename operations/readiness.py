"""Can this process serve? The database answers, Redis answers, the archive storage takes a write.

Each check runs in a thread of its own and the answer waits for them at most ``READYZ_TIMEOUT``
seconds together: a dependency that hangs (a stopped Redis, an S3 endpoint that accepts
connections and never answers) makes /readyz fail on time instead of hanging the probe, and
the load balancer's or orchestrator's own timeout never decides for us. A check still stuck from
an earlier probe is not started again (it reports that it is still waiting), so a dependency
that hangs for an hour costs one thread, not one per probe.

Checks open their own connections, closed afterwards: a pooled connection would say nothing about
whether a new one can be made (a full ``max_connections``, a Redis that restarted).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.db.utils import load_backend
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from observability.metrics import HOST
from ocl_export.storage import get_storage

logger = logging.getLogger(__name__)

PROBE_KEY = f".readyz/{HOST}"


def database_answers() -> str:
    """A new connection with the service's settings runs ``SELECT 1``."""
    settings_dict = connections.configure_settings({"default": dict(settings.DATABASES["default"])})["default"]
    settings_dict["OPTIONS"] = dict(settings_dict.get("OPTIONS") or {})
    if "postgresql" in settings_dict["ENGINE"]:
        # libpq's own bound on connecting, so a silent server does not hold the thread for ever.
        settings_dict["OPTIONS"]["connect_timeout"] = max(2, math.ceil(settings.READYZ_TIMEOUT))
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "readyz")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        wrapper.close()
    return "ok"


def redis_answers() -> str:
    timeout = settings.REDIS_SOCKET_TIMEOUT
    client = Redis.from_url(
        settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def storage_writable() -> str:
    """Writes and deletes a small object where archives go (the bucket, or the export directory)."""
    storage = get_storage()
    with storage.open_writer(PROBE_KEY, "text/plain") as writer:
        writer.write(b"ready\n")
    storage.delete(PROBE_KEY)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": database_answers,
    "redis": redis_answers,
    "storage": storage_writable,
}


def target(name: str) -> tuple[object, ...]:
    """What a check talks to under the current settings: a check stuck on one target must not
    stand in for a check of another (tests switch settings; a deployment never does)."""
    if name == "database":
        db = settings.DATABASES["default"]
        return (db.get("HOST"), db.get("PORT"), db.get("NAME"))
    if name == "redis":
        return (settings.REDIS_URL,)
    if settings.EXPORT_STORAGE == "s3":
        return ("s3", settings.AWS_S3_ENDPOINT_URL, settings.AWS_STORAGE_BUCKET_NAME)
    return ("filesystem", str(settings.EXPORT_STORAGE_DIR))


@dataclass
class Probe:
    """One run of one check, in its own daemon thread."""

    name: str
    check: Callable[[], str]
    done: threading.Event
    outcome: str = ""
    ok: bool = False

    def run(self) -> None:
        try:
            self.outcome = self.check()
            self.ok = True
        except Exception as exc:
            # The answer names the kind of failure only: /readyz is often reachable from outside,
            # and messages carry internal host names, ports and bucket names. The log has it all.
            self.outcome = type(exc).__name__
            logger.warning("readiness check %s failed: %s: %s", self.name, type(exc).__name__, exc)
        finally:
            self.done.set()


_in_flight: dict[tuple[object, ...], Probe] = {}
_lock = threading.Lock()


def _start(name: str, check: Callable[[], str]) -> tuple[Probe, bool]:
    """The probe of ``name`` to wait for, and whether it is still the one of an earlier call."""
    key = (name, *target(name))
    with _lock:
        earlier = _in_flight.get(key)
        if earlier is not None and not earlier.done.is_set():
            return earlier, True
        probe = Probe(name, check, threading.Event())
        _in_flight[key] = probe
    threading.Thread(target=probe.run, name=f"readyz-{name}", daemon=True).start()
    return probe, False


def check_readiness(timeout: float | None = None) -> dict[str, dict[str, object]]:
    """``{name: {"ok": bool, "detail": str}}`` for every check, within ``timeout`` seconds."""
    timeout = settings.READYZ_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    started = {name: _start(name, check) for name, check in CHECKS.items()}
    results: dict[str, dict[str, object]] = {}
    for name, (probe, earlier) in started.items():
        finished = probe.done.wait(max(0.0, deadline - time.monotonic()))
        if not finished:
            detail = f"no answer within {timeout:g} s"
            if earlier:
                detail += " (a check started by an earlier probe is still waiting)"
            results[name] = {"ok": False, "detail": detail}
        else:
            results[name] = {"ok": probe.ok, "detail": probe.outcome}
        if not finished:
            logger.warning("readiness check %s: %s", name, results[name]["detail"])
    return results
