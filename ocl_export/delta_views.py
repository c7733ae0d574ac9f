"""The delta resource: ``:owner/:repoType/:repo/:version/export/delta/?from=:older``.

It answers exactly as the export resource does, in either profile (``profiles``), because a
delta is an export row with a base: GET/HEAD say where it stands (303/302 to the archive, 204
or 208 while it is made), POST queues it (202) or points at it. A pair that no delta joins is a
404 naming why (there is no such delta); no ``?from=`` at all is a 400. A delta carries the sha256 of the newer version's full export in the same
format, so a POST before that export is ready requests it and answers as for a delta being made
(409 in v1, 208 with that export's job in v2): POST again once it is ready.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rest_framework.exceptions import NotAuthenticated, NotFound, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from foundation.errors import Conflict
from repos.deltas import DeltaError, check_pair
from repos.lookups import get_repository, get_version
from repos.models import Repository, RepositoryVersion
from repos.views.base import JSONWhateverAccept

from .jobs import queue_export
from .profiles import Situation
from .standing import ArchiveCheck, of_version, where_export_stands
from .views import answer, requested_format

NOT_READY = (
    "The delta carries the sha256 of the {fmt} export of {version!r}, which is not ready yet; "
    "it has been requested. POST again once it is ready."
)


def older_version(request: Request, repository: Repository) -> RepositoryVersion:
    """``?from=``: a version id of this repository, or a version's URL (any other repository's is a 400)."""
    raw = request.query_params.get("from") or ""
    if not raw:
        raise ParseError("Name the version the delta starts from: ?from=<version id>.")
    if "/" in raw:
        path = urlsplit(raw).path.rstrip("/") + "/"
        name = path[len(repository.url) :].strip("/")
        if not path.startswith(repository.url) or not name or "/" in name:
            raise NotFound(f"A delta joins two versions of {repository.url}; {raw!r} is not one of them.")
        raw = name
    return get_version(repository, raw)


class DeltaView(APIView):
    content_negotiation_class = JSONWhateverAccept

    def pair(self, request: Request, kwargs: dict[str, Any]) -> tuple[RepositoryVersion, RepositoryVersion]:
        repository = get_repository(request, kwargs)
        if request.method == "POST" and not request.user.is_authenticated:
            raise NotAuthenticated()
        newer = get_version(repository, kwargs["version"])
        older = older_version(request, repository)
        try:
            check_pair(older, newer)
        except DeltaError as exc:
            # No such delta (the request itself is well formed): a 404 that says why.
            raise NotFound(str(exc)) from exc
        return older, newer

    def get(self, request: Request, **kwargs: Any) -> Response:
        older, newer = self.pair(request, kwargs)
        find = of_version(newer, requested_format(request), older)
        standing = where_export_stands(find, archive=ArchiveCheck.BEFORE_REDIRECT_TO_STORAGE)
        return answer(request, standing.situation, standing.export)

    def post(self, request: Request, **kwargs: Any) -> Response:
        older, newer = self.pair(request, kwargs)
        fmt = requested_format(request)
        if where_export_stands(of_version(newer, fmt)).situation is not Situation.READY:
            try:
                full = queue_export(newer, fmt, request.user).export
            except Conflict:
                full = where_export_stands(of_version(newer, fmt)).export
            return answer(request, Situation.BUSY, full, NOT_READY.format(fmt=fmt, version=newer.version))
        where_export_stands(of_version(newer, fmt, older))  # a dead job must not hold the 409 forever
        try:
            outcome = queue_export(newer, fmt, request.user, base=older)
        except Conflict as exc:
            busy = where_export_stands(of_version(newer, fmt, older)).export
            return answer(request, Situation.BUSY, busy, str(exc.detail))
        return answer(request, Situation.QUEUED if outcome.queued else Situation.READY, outcome.export)
