"""Whole answers to anonymous GET and HEAD requests, kept by ``read_cache.store``'s rule.

The innermost middleware: a kept answer skips URL resolution, the view and its query; the
middleware above it still run (request id, metrics, security headers), and metrics still see the
route, whose match is kept with the answer.

Only what a view marks with :func:`keep` is kept: a whole (not streamed) body that is a function
of database rows alone. A view whose answer must differ on every call (a one-use Location) marks
it with a ``refresh`` that sets those headers again each time it is served. Requests that ask for
a zipped body (``Compress``) are never answered from here. The key is the method, scheme, host
(and forwarded host), path, query string and ``Authorization``: everything else a kept view reads
from the request.
A token's user is itself rows (the tables of ``auth`` and ``authtoken`` are watched), so a
caller's answers are kept under its own key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from . import listener
from .store import get_store

METHODS = ("GET", "HEAD")
MARK = "_read_cache_keep"
MAX_BODY_BYTES = 256 * 1024


Refresh = Callable[[HttpRequest, HttpResponseBase], None]


def keep(response: HttpResponseBase, refresh: Refresh | None = None) -> HttpResponseBase:
    """Mark an answer as made from database rows alone, so that it may be kept; ``refresh``
    (request, response) renews the headers that must be new on every answer."""
    setattr(response, MARK, refresh or True)
    return response


@dataclass(frozen=True)
class Kept:
    status: int
    headers: tuple[tuple[str, str], ...]
    content: bytes
    match: Any  # the ResolverMatch: the route's name for metrics and logs
    refresh: Refresh | None

    def response(self, request: HttpRequest) -> HttpResponse:
        response = HttpResponse(self.content, status=self.status)
        for name, value in self.headers:
            response[name] = value
        if self.refresh is not None:
            self.refresh(request, response)
        return response


def cache_key(request: HttpRequest) -> tuple[str, ...] | None:
    meta = request.META
    if request.method not in METHODS or "HTTP_COMPRESS" in meta:
        return None
    return (
        request.method,
        request.scheme,
        meta.get("HTTP_HOST", ""),
        meta.get("HTTP_X_FORWARDED_HOST", ""),  # the host of absolute URLs with USE_X_FORWARDED_HOST
        request.path,
        meta.get("QUERY_STRING", ""),
        meta.get("HTTP_AUTHORIZATION", ""),
    )


class ReadCacheMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        from django.conf import settings

        self.get_response = get_response
        self.enabled = settings.READ_CACHE
        if self.enabled:
            listener.start()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        key = cache_key(request) if self.enabled else None
        if key is None:
            return self.get_response(request)
        store = get_store()
        kept = store.get(key)
        if kept is not None:
            request.resolver_match = kept.match
            return kept.response(request)
        ticket = store.ticket()
        response = self.get_response(request)
        mark = getattr(response, MARK, None)
        if ticket is not None and mark and not response.streaming and len(response.content) <= MAX_BODY_BYTES:
            headers = tuple((name, value) for name, value in response.items())
            refresh = None if mark is True else mark
            kept = Kept(response.status_code, headers, response.content, request.resolver_match, refresh)
            store.put(key, kept, ticket)
        return response
