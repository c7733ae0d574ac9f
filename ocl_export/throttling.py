"""Rate limits: DRF's throttles, counted in Redis so that every web process shares one count.

Two limits, each one setting:

- ``RATE_LIMIT_EXPORT_WRITES`` (``30/hour`` by default): POST and DELETE of exports, per user.
  Queueing an export costs a worker minutes; a fleet's sync scripts ask for a few a day, so the
  default is one they never meet, while a script stuck in a loop is stopped within the hour.
- ``RATE_LIMIT_ANONYMOUS_READS`` (off by default): every anonymous GET and HEAD of the API, per
  client address (``X-Forwarded-For`` as DRF reads it, behind the proxies gunicorn trusts).
  Off because load tests and clinics behind one NAT share an address. It is a middleware above the
  read cache: a kept answer skips the view, and with it any throttle a view would check.

Staff are never limited. A refused request gets 429, ``Retry-After`` and the JSON error shape.

The count is a window per caller that opens with its first request: one transaction in Redis per
request (create the counter with its expiry if there is none, ``INCR`` it, read its time to
live), atomic however many processes ask at once, on the queue's Redis connection (short
timeouts, no retries). DRF's own throttles keep a list of timestamps in Django's cache with a
read and a write, so concurrent requests on two processes overwrite each other's counts and a
client with N connections gets about N times its limit.

When Redis does not answer, a request is let through (fail open): the queue needs Redis anyway
(POST then answers 503), and a read should not fail because a counter is away. The failure is
logged once and counted (``ocl_rate_limit_checks_total{outcome="unchecked"}``), and for
``PAUSE_SECONDS`` this process stops asking, so a hung Redis costs one request its socket
timeout, not every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from jobqueue.queue import connection
from observability import metrics

logger = logging.getLogger(__name__)

PAUSE_SECONDS = 10.0
WRITES = ("POST", "DELETE")
READS = ("GET", "HEAD")
# Not the API: the operators' endpoints, the admin console and its static files.
UNLIMITED = ("/healthz", "/readyz", "/metrics", "/admin/", "/static/")

_pause = {"until": 0.0}
_pause_lock = threading.Lock()


def count(key: str, duration: int) -> tuple[int, float] | None:
    """This request's number in ``key``'s current window and the seconds the window has left;
    None when Redis could not be asked (the request then goes through)."""
    now = time.time()
    if now < _pause["until"]:
        metrics.rate_limit_checked("unchecked")
        return None
    name = f"{settings.RATE_LIMIT_KEY_PREFIX}:{key}"
    try:
        pipe = connection().pipeline(transaction=True)
        pipe.set(name, 0, ex=duration, nx=True)
        pipe.incr(name)
        pipe.pttl(name)
        _, number, left_ms = pipe.execute()
    except RedisError as exc:
        with _pause_lock:
            first = now >= _pause["until"]
            _pause["until"] = now + PAUSE_SECONDS
        if first:
            logger.warning("rate limits unchecked for %.0f s: Redis did not answer (%s)", PAUSE_SECONDS, exc)
        metrics.rate_limit_checked("unchecked")
        return None
    return int(number), max(left_ms, 0) / 1000


class SharedRateThrottle(SimpleRateThrottle):
    """A DRF throttle whose rate is read from a setting at call time, counted by :func:`count`."""

    setting = ""
    methods: tuple[str, ...] = ()

    def __init__(self) -> None:
        # SimpleRateThrottle reads DRF's THROTTLE_RATES once, at import; the setting is read per
        # request instead, so a test (or a settings override) changes it.
        self.wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting) or None

    def exempt(self, request: Any) -> bool:
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated and user.is_staff)

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method not in self.methods:
            return True
        self.rate = self.get_rate()
        if self.rate is None or self.exempt(request):
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        counted = count(key, self.duration)
        if counted is None:
            return True
        number, left = counted
        if number <= self.num_requests:
            metrics.rate_limit_checked("allowed")
            return True
        metrics.rate_limit_checked("refused")
        self.wait_seconds = max(1.0, left)
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


class ExportWriteThrottle(SharedRateThrottle):
    """POST and DELETE of an export (the views that name it in ``throttle_classes``), per user."""

    scope = "export-writes"
    setting = "RATE_LIMIT_EXPORT_WRITES"
    methods = WRITES

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return f"{self.scope}:{ident}"


class AnonymousReadThrottle(SharedRateThrottle):
    """GET and HEAD by callers with neither a token nor a session, per address."""

    scope = "anonymous-reads"
    setting = "RATE_LIMIT_ANONYMOUS_READS"
    methods = READS

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = getattr(request, "user", None)  # set for a request carrying a session (ConsoleMiddleware)
        if "HTTP_AUTHORIZATION" in request.META or (user is not None and user.is_authenticated):
            return None
        return f"{self.scope}:{self.get_ident(request)}"


def refusal(wait: float | None) -> JsonResponse:
    """The 429 DRF's exception handler gives a throttled view, for answers made outside DRF."""
    exc = Throttled(wait)
    response = JsonResponse({"detail": str(exc.detail)}, status=exc.status_code)
    if exc.wait is not None:
        response["Retry-After"] = str(exc.wait)  # whole seconds, rounded up, as DRF's handler says
    return response


class AnonymousReadLimitMiddleware:
    """Applies :class:`AnonymousReadThrottle` to the API's requests before the read cache and the
    views. Probes (``/healthz``, ``/readyz``), scrapes and the console are left out: a load
    balancer probes anonymously from one address. Costs nothing while the setting is empty."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if settings.RATE_LIMIT_ANONYMOUS_READS and not request.path.startswith(UNLIMITED):
            throttle = AnonymousReadThrottle()
            if not throttle.allow_request(request, None):
                return refusal(throttle.wait())
        return self.get_response(request)
