"""Concepts and mappings at exactly the URLs the JSON carries (``url`` and ``version_url``).

- ``:repo/concepts/:id/``: the concept as HEAD holds it now;
- ``:repo/concepts/:id/:uuid/``: that version of it;
- ``:repo/:version/concepts/:id/``: the version's member;
- ``:repo/[:version/]concepts/``: a page of them (same parameters as a version's detail).

Mappings alike. Bodies are the items exactly as they appear inside a version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.request import Request

from repos.checksum_store import splice, with_checksums
from repos.checksums import item_checksums
from repos.lookups import get_member_body, get_repository, get_repository_version, item_version_pk
from repos.models import HEAD, RepositoryVersion
from repos.params import CHECKSUMS_PARAMETER, ITEM_QUERY_PARAMETERS, ItemQuery, parse_bool, parse_item_query
from repos.representation.body import iter_item_chunks
from repos.representation.items import CONCEPTS, MAPPINGS, ItemKind, item_bytes, iter_rows
from repos.views.base import ReadAPIView, list_headers
from repos.views.streaming import body_response, wants_zip


def stream_list(kind: ItemKind, version: RepositoryVersion, query: ItemQuery) -> Iterator[bytes]:
    """A bare JSON array of items, batch by batch, built like the lists inside a version."""
    yield b"["
    yield from iter_item_chunks(kind, version, query.item_filter)
    yield b"]"


def stream_list_with_checksums(kind: ItemKind, version: RepositoryVersion, query: ItemQuery) -> Iterator[bytes]:
    """The same list, each item with its OCL ``checksums`` (``?checksums=true``)."""
    separator = "["
    for rows in iter_rows(kind, version, query.item_filter):
        yield (separator + ",".join([text for _pk, text in with_checksums(kind, rows)])).encode()
        separator = ","
    yield b"[]" if separator == "[" else b"]"


class ItemListView(ReadAPIView):
    kind: ItemKind = CONCEPTS  # set per route by as_view(kind=...)
    reads = ITEM_QUERY_PARAMETERS | {CHECKSUMS_PARAMETER}

    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        version = get_repository_version(request, kwargs, kwargs.get("version", HEAD))
        query = parse_item_query(
            request.query_params,
            concepts=self.kind is CONCEPTS,
            mappings=self.kind is MAPPINGS,
            whole=wants_zip(request),
        )
        headers = list_headers(self.kind, version, query, "")
        headers.update(offset=str(query.offset), limit=str(query.limit))
        checksums = parse_bool(request.query_params, CHECKSUMS_PARAMETER)
        chunks = (stream_list_with_checksums if checksums else stream_list)(self.kind, version, query)
        return body_response(request, chunks, stream=query.is_unbounded, headers=headers)


class ItemDetailView(ReadAPIView):
    kind: ItemKind = CONCEPTS  # set per route by as_view(kind=...)
    reads = frozenset({CHECKSUMS_PARAMETER})

    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        if "uuid" in kwargs:
            repository = get_repository(request, kwargs)
            body = item_bytes(self.kind, item_version_pk(self.kind, repository, kwargs["item"], kwargs["uuid"]))
        else:
            body = get_member_body(request, kwargs, self.kind, kwargs.get("version", HEAD))
        if parse_bool(request.query_params, CHECKSUMS_PARAMETER):
            # computed from the very bytes answered: what a client recomputes from them with ocldev
            body = splice(body.decode(), *item_checksums(self.kind.key, body)).encode()
        return body_response(request, iter([body]), stream=False)
