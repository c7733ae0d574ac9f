"""What every read API view shares: content negotiation that never refuses, and page headers.

Pagination figures travel in response headers, never in the body, because the body of
``GET .../:version/?...`` must stay byte-for-byte the export's ``export.json``:

- ``num_found_concepts`` / ``num_found_mappings``: items of that list matching the filter
  (includeRetired, updatedSince), whatever the page;
- ``num_returned_concepts`` / ``num_returned_mappings``: items of that list in this body;
- ``offset`` and ``limit`` (0 = everything) as applied to each included list.

The ``.../concepts/`` and ``.../mappings/`` listings carry a single list, so they say
``num_found``, ``num_returned``, ``offset`` and ``limit`` (OCL's names).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from read_cache.middleware import keep
from repos.models import RepositoryVersion
from repos.params import ItemQuery
from repos.removals import with_removed
from repos.representation.body import stream_version
from repos.representation.items import CONCEPTS, MAPPINGS, ItemKind, count_items
from repos.views.streaming import body_response


class JSONWhateverAccept(DefaultContentNegotiation):
    """We only speak JSON (and zip on request): an unusual ``Accept`` gets JSON, not a 406."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class ReadAPIView(APIView):
    """Base of the read API views; errors go through ``foundation.errors.exception_handler``.

    Their whole answers, found (200) or not (404), are made of database rows alone, so
    ``read_cache`` may keep them until the rows change; streamed ones are never kept."""

    content_negotiation_class = JSONWhateverAccept
    # The query parameters the view's answers depend on: an answer to a request naming any other
    # is not kept (read_cache.middleware says why).
    reads: frozenset[str] = frozenset()

    def finalize_response(
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code in (200, 404) and not response.streaming:
            keep(response, reads=self.reads)
        return response


def returned_count(found: int, query: ItemQuery) -> int:
    remaining = max(0, found - query.offset)
    return remaining if query.is_unbounded else min(remaining, query.limit)


def list_headers(kind: ItemKind, version: RepositoryVersion, query: ItemQuery, suffix: str) -> dict[str, str]:
    found = count_items(kind, version, query.item_filter)
    return {
        f"num_found{suffix}": str(found),
        f"num_returned{suffix}": str(returned_count(found, query)),
    }


def page_headers(version: RepositoryVersion, query: ItemQuery) -> dict[str, str]:
    """The figures of each included list; nothing when the body carries no items."""
    headers: dict[str, str] = {}
    item_filter = query.item_filter
    for kind, wanted in ((CONCEPTS, item_filter.include_concepts), (MAPPINGS, item_filter.include_mappings)):
        if wanted:
            headers.update(list_headers(kind, version, query, f"_{kind.key}"))
    if headers:
        headers["offset"] = str(query.offset)
        headers["limit"] = str(query.limit)
    return headers


def version_response(
    request: Request,
    version: RepositoryVersion,
    query: ItemQuery,
    top: dict[str, Any] | None = None,
    removed: bool = False,
) -> HttpResponseBase:
    """``GET .../:version/?...``: the one representation, streamed when it holds every item;
    ``removed``: with what left HEAD (``repos.removals``)."""
    headers = page_headers(version, query)
    chunks: Iterator[bytes] = stream_version(version, query.item_filter, top=top)
    if removed:
        chunks = with_removed(chunks, version, query.item_filter)
    return body_response(request, chunks, stream=query.wants_items and query.is_unbounded, headers=headers)
