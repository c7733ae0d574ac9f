"""Whole answers to anonymous GET and HEAD requests, kept by ``read_cache.store``'s rule.

The innermost middleware: a kept answer skips URL resolution, the view and its query; the
middleware above it still run (request id, metrics, security headers), and metrics still see the
route, whose names are kept with the answer.

Only what a view marks with :func:`keep` is kept: a whole (not streamed) body that is a function
of database rows alone. A view whose answer must differ on every call (a one-use Location) marks
it with a ``refresh`` that sets those headers again each time it is served. Requests that ask for
a zipped body (``Compress``) are never answered from here. The key is the method, scheme, host
(and forwarded host), path, query string and ``Authorization``: everything else a kept view reads
from the request.
A token's user is itself rows (the tables of ``auth`` and ``authtoken`` are watched), so a
caller's answers are kept under its own key.

Two kinds of request neither read nor fill the store:

- **One carrying a Cookie header.** The key holds ``Authorization`` and no cookie, so an answer
  made for a session (Django's admin logs in with one) would be served to whoever asks next;
  such requests always go to the view.
- **One whose query string names a parameter the view does not read.** Each view says which
  parameters its answer depends on (``keep(..., reads=...)``); an answer to a request carrying any
  other is not kept. Otherwise every distinct value of an ignored parameter (``?x=1``, ``?x=2``...)
  would be a distinct key holding the same 186 KB page: the attack that grew every process by
  gigabytes. Keying by the parameters read alone would also serve those requests from memory, but
  a key must then be known before the view runs, and a view that read a parameter it did not
  declare would get another request's answer; not keeping them can only cost a database read.
  Either way no answer's bytes change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from . import listener
from .store import get_store

METHODS = ("GET", "HEAD")
MARK = "_read_cache_keep"
MAX_BODY_BYTES = 256 * 1024


Refresh = Callable[[HttpRequest, HttpResponseBase], None]


@dataclass(frozen=True)
class Mark:
    refresh: Refresh | None
    reads: frozenset[str]


def keep(
    response: HttpResponseBase, refresh: Refresh | None = None, reads: frozenset[str] = frozenset()
) -> HttpResponseBase:
    """Mark an answer as made from database rows alone, so that it may be kept; ``refresh``
    (request, response) renews the headers that must be new on every answer; ``reads`` names the
    query parameters the answer depends on (a request with any other is not kept)."""
    setattr(response, MARK, Mark(refresh, reads))
    return response


@dataclass(frozen=True)
class Kept:
    status: int
    headers: tuple[tuple[str, str], ...]
    content: bytes
    match: KeptRoute | None  # the route's names for metrics and logs
    refresh: Refresh | None

    def response(self, request: HttpRequest) -> HttpResponse:
        response = HttpResponse(self.content, status=self.status)
        for name, value in self.headers:
            response[name] = value
        if self.refresh is not None:
            self.refresh(request, response)
        return response


@dataclass(frozen=True)
class KeptRoute:
    """What metrics and logs read of a kept answer's ResolverMatch (``request.resolver_match`` on
    a kept answer): its names. A whole match would cost a kept answer 3.5 KB (its kwargs twice,
    and a list of every pattern tried), more than most answers' bodies."""

    url_name: str | None
    view_name: str
    route: str


def route_of(request: HttpRequest) -> KeptRoute | None:
    match = request.resolver_match
    return None if match is None else KeptRoute(match.url_name, match.view_name, match.route)


def cache_key(request: HttpRequest) -> tuple[str, ...] | None:
    meta = request.META
    if request.method not in METHODS or "HTTP_COMPRESS" in meta or meta.get("HTTP_COOKIE"):
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
        if (
            ticket is not None
            and mark is not None
            and not response.streaming
            and len(response.content) <= MAX_BODY_BYTES
            and mark.reads.issuperset(request.GET.keys())
        ):
            headers = tuple((name, value) for name, value in response.items())
            kept = Kept(response.status_code, headers, response.content, route_of(request), mark.refresh)
            store.put(key, kept, ticket)
        return response
