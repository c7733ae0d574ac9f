"""``:owner/:repoType/`` (the owner's repositories) and ``:owner/:repoType/:repo/`` (one of them)."""

from __future__ import annotations

from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.request import Request

from repos.lookups import get_owner, get_repository, visible_repositories
from repos.params import ITEM_QUERY_PARAMETERS, parse_item_query
from repos.removals import PARAMETER as INCLUDE_REMOVED
from repos.removals import wants_removed
from repos.representation.encoding import dumps
from repos.representation.shapes import repository_dict
from repos.views.base import ReadAPIView, version_response
from repos.views.streaming import body_response, json_response, wants_zip


class RepositoryListView(ReadAPIView):
    """A bare array of the owner's sources (or collections) the caller may see, by mnemonic."""

    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        owner = get_owner(request, kwargs["owner_kind"], kwargs.get("owner"))
        repositories = visible_repositories(request, owner, kwargs["repo_type"])
        return json_response([repository_dict(repository) for repository in repositories])


class RepositoryDetailView(ReadAPIView):
    """The repository; with includeConcepts/includeMappings, HEAD's items under it."""

    reads = ITEM_QUERY_PARAMETERS | {INCLUDE_REMOVED}

    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        repository = get_repository(request, kwargs)
        query = parse_item_query(request.query_params, whole=wants_zip(request))
        top = repository_dict(repository)
        if not query.wants_items:
            # No items: the repository alone, not HEAD's version shape (no references either).
            wants_removed(request.query_params, None, query)  # includeRemoved=true is a 400 here
            return body_response(request, iter([dumps(top)]), stream=False)
        head = repository.head()
        head.repository = repository
        removed = wants_removed(request.query_params, head, query)
        return version_response(request, head, query, top=top, removed=removed)
