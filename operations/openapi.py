"""The operators' routes in /openapi.json: ``/healthz``, ``/readyz`` and ``/metrics``.

They are plain Django views (``operations.views`` says why), and drf-spectacular describes DRF
views only, so it left them out. A postprocessing hook, named in ``SPECTACULAR_SETTINGS`` beside
``ocl_export.openapi``'s, adds them from the table below; this app owns its routes and their
description, and nothing below it learns of them. They are written as operators know them,
without the trailing slash (each route takes both spellings). The checks /readyz names come from
``operations.readiness``, so a new check is described with it.
"""

from __future__ import annotations

from typing import Any

from observability.openapi import RETRY_AFTER, STRING, Schema, header, ref

from .readiness import CHECKS

NO_STORE = header("no-cache, no-store, must-revalidate: every answer is of the moment")
CHECK_NAMES = list(CHECKS)

COMPONENTS: dict[str, Schema] = {
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    },
    "ReadinessCheck": {
        "type": "object",
        "required": ["ok", "detail"],
        "properties": {
            "ok": {"type": "boolean"},
            "detail": {
                "type": "string",
                "description": '"ok", the kind of failure (an exception class such as OperationalError), '
                'or "no answer within N s"; never a host, port or bucket',
            },
        },
    },
    "ReadinessChecks": {
        "type": "object",
        "description": "Every check, by name: the database, Redis, the archive storage.",
        "required": CHECK_NAMES,
        "properties": {name: ref("ReadinessCheck") for name in CHECK_NAMES},
    },
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {"status": {"type": "string", "enum": ["ready"]}, "checks": ref("ReadinessChecks")},
    },
    "NotReady": {
        "type": "object",
        "required": ["status", "detail", "failed", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["unavailable"]},
            "detail": {"type": "string", "description": 'e.g. "Not ready: redis."'},
            "failed": {"type": "array", "items": {"type": "string", "enum": CHECK_NAMES}, "minItems": 1},
            "checks": ref("ReadinessChecks"),
        },
    },
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "metricsToken": {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN, when it is set"},
}


def json_answer(description: str, body: Schema, headers: dict[str, Schema] | None = None) -> Schema:
    return {
        "description": description,
        "headers": {"Cache-Control": NO_STORE, **(headers or {})},
        "content": {"application/json": {"schema": body}},
    }


# Any route, before its view: a NUL in a query value (serving.request_guard), a Host not allowed.
BAD_REQUEST = {
    "description": "A query value holds a NUL character, or the Host is not an allowed one",
    "content": {"application/json": {"schema": ref("Error")}},
}

PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {
        "operationId": "get_healthz",
        "summary": "Liveness: the process answers requests (no I/O at all)",
        "responses": {"200": json_answer("The process is alive", ref("Health")), "400": BAD_REQUEST},
    },
    "/readyz": {
        "operationId": "get_readyz",
        "summary": "Readiness: the database, Redis and the archive storage answer, within READYZ_TIMEOUT",
        "responses": {
            "200": json_answer("Every check passed", ref("Ready")),
            "400": BAD_REQUEST,
            "503": json_answer(
                "A check failed or did not answer in time; failed names it",
                ref("NotReady"),
                {"Retry-After": RETRY_AFTER},
            ),
        },
    },
    "/metrics": {
        "operationId": "get_metrics",
        "summary": "Prometheus metrics (off until METRICS_TOKEN or METRICS_BIND is set)",
        "description": "With METRICS_TOKEN set, only to that bearer token; with METRICS_BIND set, only on "
        "connections to that listener; with neither, never (404).",
        "security": [{"metricsToken": []}, {}],
        "responses": {
            "200": {
                "description": "The Prometheus text exposition (text/plain; version=0.0.4)",
                "headers": {"Cache-Control": NO_STORE},
                "content": {"text/plain": {"schema": STRING}},
            },
            "400": BAD_REQUEST,
            "401": json_answer(
                "METRICS_TOKEN is set and the request does not carry it as a bearer token",
                ref("Error"),
                {"WWW-Authenticate": header('Bearer realm="metrics"')},
            ),
            "404": json_answer(
                "Metrics are off (neither METRICS_TOKEN nor METRICS_BIND is set), or asked on another "
                "listener than METRICS_BIND's",
                ref("Error"),
            ),
        },
    },
}


def add_operations(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """Postprocessing hook: the operators' routes, their bodies and the metrics token."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(COMPONENTS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    paths = result.setdefault("paths", {})
    for path, operation in PATHS.items():
        paths[path] = {"get": {"tags": ["operations"], **operation}}
    return result
