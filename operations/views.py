"""``/healthz``, ``/readyz`` and ``/metrics``: plain Django views, outside DRF, so that they stay
cheap and answer even when the API's own machinery is what broke.

``/healthz`` (liveness) does no I/O: it says the process answers requests, nothing more, so an
orchestrator restarts a process only when restarting it can help. ``/readyz`` (readiness) checks
the dependencies (``operations.readiness``) and answers 503 naming the ones that failed.
``/metrics`` is guarded: it answers only with ``METRICS_TOKEN`` as a bearer token and/or only
on the listener ``METRICS_BIND``, and not at all while neither is set.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from .readiness import check_readiness
from .scrape import exposition

NO_STORE = "no-cache, no-store, must-revalidate"
READ_METHODS = ("GET", "HEAD")


def json_answer(body: dict[str, object], status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = NO_STORE
    return response


def method_not_allowed(request: HttpRequest) -> JsonResponse:
    response = json_answer({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    response["Allow"] = ", ".join(READ_METHODS)
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    if request.method not in READ_METHODS:
        return method_not_allowed(request)
    return json_answer({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    if request.method not in READ_METHODS:
        return method_not_allowed(request)
    checks = check_readiness()
    failed = [name for name, result in checks.items() if not result["ok"]]
    if not failed:
        return json_answer({"status": "ready", "checks": checks})
    response = json_answer(
        {"status": "unavailable", "detail": f"Not ready: {', '.join(failed)}.", "failed": failed, "checks": checks},
        status=503,
    )
    response["Retry-After"] = "5"
    return response


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """Why this request may not read the metrics, as the answer to give, or None when it may."""
    if not settings.METRICS_TOKEN and settings.METRICS_BIND_PORT is None:
        return json_answer({"detail": "Metrics are off: set METRICS_TOKEN or METRICS_BIND."}, status=404)
    if settings.METRICS_BIND_PORT is not None and request.META.get("SERVER_PORT") != str(settings.METRICS_BIND_PORT):
        # Another listener (the public one): as if there were nothing here.
        return json_answer({"detail": "Not found."}, status=404)
    if settings.METRICS_TOKEN:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.METRICS_TOKEN.encode()
        ):
            response = json_answer({"detail": "The metrics need the bearer token METRICS_TOKEN."}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in READ_METHODS:
        return method_not_allowed(request)
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = NO_STORE
    return response
