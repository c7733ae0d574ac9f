"""``:owner/:repoType/:repo/versions/feed/`` and ``:owner/feed/``: the release feed (``feed``).

The body is kept in the read cache (``read_cache.store``) until the database changes, so a
completed export or delta (a committed change to its row) shows in the next answer. Its ETag is
the sha256 of the body: a client that sends it back in ``If-None-Match`` hears 304 while nothing
it would read has changed. ``?format=atom`` answers the same entries as an Atom feed whose
links carry ``length`` and ``sha256Hash``, as HL7's FHIR Terminology Syndication does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from typing import Any

from django.http import HttpResponse
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.views import APIView

from read_cache.store import get_store
from repos.lookups import get_owner, get_repository
from repos.representation.encoding import dumps
from repos.views.base import JSONWhateverAccept
from serving.public_urls import absolute_url

from .feed import feed, released_versions
from .feed_atom import atom

CONTENT_TYPES = {"json": "application/json", "atom": "application/atom+xml"}  # Atom: UTF-8 by its declaration


def etag_matches(request: Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in wanted.split(","))


def feed_response(request: Request, make: Callable[[], dict[str, Any]]) -> HttpResponse:
    """The feed in the asked rendering, or 304 when the client holds it already."""
    shape = request.query_params.get("format") or "json"
    if shape not in CONTENT_TYPES:
        raise ParseError(f"Unknown feed format {shape!r}; use json or atom.")
    # Whatever the body depends on: the caller (visibility), the host (absolute links), the shape.
    key = ("release-feed", request.user.pk, absolute_url(request, request.path), shape)

    def render() -> tuple[bytes, str]:
        document = make()
        body = dumps(document) if shape == "json" else atom(document)
        return body, f'"{hashlib.sha256(body).hexdigest()}"'

    body, etag = get_store().remember(key, render)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type=CONTENT_TYPES[shape])
    for name, value in headers.items():
        response[name] = value
    return response


class RepositoryFeedView(APIView):
    """A repository's released versions, newest first."""

    content_negotiation_class = JSONWhateverAccept

    def get(self, request: Request, **kwargs: Any) -> HttpResponse:
        repository = get_repository(request, kwargs)
        absolute = partial(absolute_url, request)

        def make() -> dict[str, Any]:
            versions = released_versions(type(repository).objects.filter(pk=repository.pk))
            return feed(f"Releases of {repository.url}", absolute(request.path), versions, absolute)

        return feed_response(request, make)


class OwnerFeedView(APIView):
    """The released versions of every repository of an owner that the caller may see, newest first."""

    content_negotiation_class = JSONWhateverAccept

    def get(self, request: Request, **kwargs: Any) -> HttpResponse:
        owner = get_owner(request, kwargs["owner_kind"], kwargs.get("owner"))
        absolute = partial(absolute_url, request)
        name = owner.org.mnemonic if owner.org is not None else owner.user.get_username()  # type: ignore[union-attr]

        def make() -> dict[str, Any]:
            repositories = owner.repositories().visible_to(request.user)
            return feed(f"Releases of {name}", absolute(request.path), released_versions(repositories), absolute)

        return feed_response(request, make)
