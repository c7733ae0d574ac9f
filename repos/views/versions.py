"""``:repo/versions`` (list, create) and ``:repo/:version/`` (read, delete)."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from rest_framework import serializers
from rest_framework.exceptions import MethodNotAllowed, NotAuthenticated, PermissionDenied
from rest_framework.request import Request

from foundation.errors import Conflict
from repos.checksum_store import pending, version_checksums
from repos.lookups import attach, get_repository, get_repository_version, get_version, with_head
from repos.models import HEAD, LATEST, Repository, RepositoryVersion, snapshot_head
from repos.params import CHECKSUMS_PARAMETER, ITEM_QUERY_PARAMETERS, parse_bool, parse_item_query
from repos.removals import PARAMETER as INCLUDE_REMOVED
from repos.removals import wants_removed
from repos.representation.shapes import version_dict, versions_list_item
from repos.signals import version_created
from repos.views.base import ReadAPIView, version_response
from repos.views.streaming import json_response, wants_zip

# Names that the URLs under a repository already use, so a version called so could never be read.
RESERVED_NAMES = {HEAD.lower(), LATEST, "export", "concepts", "mappings", "versions"}
# RFC 3986 unreserved characters, starting with a letter or digit (no "." or ".." segments).
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")


class NewVersion(serializers.Serializer):
    """The body of ``POST :repo/versions``; the edge of the API, so a serializer is fine here."""

    id = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    released = serializers.BooleanField(required=False, default=False)
    external_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)
    extras = serializers.DictField(required=False, allow_null=True, default=None)

    def validate_id(self, value: str) -> str:
        if value.lower() in RESERVED_NAMES:
            raise serializers.ValidationError(f"{value!r} is reserved.")
        if not VERSION_NAME.fullmatch(value):
            raise serializers.ValidationError("Use letters, digits and . _ ~ - only, starting with a letter or digit.")
        return value


def with_version_checksums(data: dict[str, Any], version: RepositoryVersion) -> dict[str, Any]:
    """A version's representation with its OCL ``checksums`` (asked for with ``?checksums=true``)
    and ``checksums_pending``: how many of its items' checksums are not stored yet (the import's
    job has not run; they are computed for the answer meanwhile, so it is right either way)."""
    return {**data, "checksums": version_checksums(version), "checksums_pending": pending(version)}


def require_admin(request: Request, repository: Repository) -> None:
    if not request.user.is_authenticated:
        raise NotAuthenticated()
    if not repository.is_admin(request.user):
        raise PermissionDenied("Only administrators of this repository may do this.")


class VersionListView(ReadAPIView):
    """Named versions newest first (created_on, then id, descending), HEAD last as OCL lists it.

    ``?released=true|false`` keeps the versions whose ``released`` is that (HEAD never is
    released); the ``ocl`` CLI sends it for ``ocl repo versions --released true``."""

    reads = frozenset({"released", CHECKSUMS_PARAMETER})

    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        released = parse_bool(request.query_params, "released") if "released" in request.query_params else None
        repository = get_repository(request, kwargs)
        # HEAD comes in the same query as the named versions (one query, not two); listed last.
        rows = with_head(repository)
        versions = [row for row in rows if row.version != HEAD and (released is None or row.released == released)]
        if released is not True:
            versions += [row for row in rows if row.version == HEAD] or [attach(repository.head(), repository)]
        if parse_bool(request.query_params, CHECKSUMS_PARAMETER):
            return json_response([with_version_checksums(versions_list_item(version), version) for version in versions])
        return json_response([versions_list_item(version) for version in versions])

    def post(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        repository = get_repository(request, kwargs)
        require_admin(request, repository)
        body = NewVersion(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if repository.versions.filter(version=data["id"]).exists():
            raise Conflict(f"Version {data['id']!r} already exists.")
        user = request.user
        try:
            with transaction.atomic():
                version = snapshot_head(
                    repository,
                    data["id"],
                    description=data["description"],
                    released=data["released"],
                    created_by=user.get_username(),
                    extras=data["extras"],
                    external_id=data["external_id"],
                )
                # Listeners (the export feature) queue work that reads this version: only once
                # it is committed and visible to other connections.
                transaction.on_commit(
                    lambda: version_created.send(sender=RepositoryVersion, version=version, user=user)
                )
        except IntegrityError as exc:
            # Two concurrent POSTs with one id: the unique constraint decides, the loser hears 409.
            raise Conflict(f"Version {data['id']!r} already exists.") from exc
        return json_response(version_dict(attach(version, repository)), status=201)


class VersionDetailView(ReadAPIView):
    """The version, with its items as asked; ``HEAD`` and ``latest`` work as names."""

    reads = ITEM_QUERY_PARAMETERS | {CHECKSUMS_PARAMETER, INCLUDE_REMOVED}

    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        version = get_repository_version(request, kwargs, kwargs["version"])
        query = parse_item_query(request.query_params, whole=wants_zip(request))
        # ?checksums=true (as oclapi2 takes it): the version's checksums among its own keys
        top = (
            with_version_checksums(version_dict(version), version)
            if parse_bool(request.query_params, CHECKSUMS_PARAMETER)
            else None
        )
        removed = wants_removed(request.query_params, version, query)
        return version_response(request, version, query, top=top, removed=removed)

    def delete(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        repository = get_repository(request, kwargs)
        if kwargs["version"] in (HEAD, LATEST):
            # HEAD is the live state; "latest" is an alias whose target moves under the caller.
            raise MethodNotAllowed("DELETE", f"{kwargs['version']} cannot be deleted; name a version.")
        version = get_version(repository, kwargs["version"])
        require_admin(request, repository)
        version.delete()
        return HttpResponse(status=204)
