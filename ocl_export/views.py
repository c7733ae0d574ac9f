"""The export resource: ``:owner/:repoType/:repo/:version/export/``, its job status, its downloads.

GET of a completed export reads the database only (Redis may be down); liveness checks touch
Redis only for exports still under way. Every answer is JSON or empty, never HTML.
"""

from __future__ import annotations

import base64
import time
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import http_date
from rest_framework.exceptions import MethodNotAllowed, NotAuthenticated, NotFound, ParseError, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from foundation.archive import FORMATS, content_type
from foundation.errors import Conflict
from read_cache.middleware import keep
from repos.lookups import get_repository, get_version
from repos.models import HEAD, RepositoryVersion
from repos.representation.encoding import iso
from repos.views.base import JSONWhateverAccept
from serving.public_urls import absolute_url

from .cancel import cancel_export
from .deletion import delete_export
from .export_lookup import completed_export, export_with_repository
from .jobs import queue_export
from .locations import issue_location, peek_location, redeem_location
from .models import Export, ExportState
from .profiles import Reply, Situation, current_profile
from .standing import ArchiveCheck, Healing, completed_first, known, of_version, where_export_stands
from .storage import content_disposition, get_storage
from .throttling import ExportWriteThrottle

STATE_HEADER = "X-Export-State"
NO_EXPORT = "none"
# Long polling of the status link holds a web worker: keep it short.
MAX_WAIT_SECONDS = 25
WAIT_STEP_SECONDS = 0.5
NO_STORE = "no-cache, no-store, must-revalidate"


def requested_format(request: Request) -> str:
    fmt = request.query_params.get("format") or settings.EXPORT_DEFAULT_FORMAT
    if fmt not in FORMATS:
        raise ParseError(f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    return fmt


def status_url(request: Request, export: Export) -> str:
    return absolute_url(request, reverse("export-status", kwargs={"pk": export.pk}))


def describe(request: Request, export: Export) -> dict[str, Any]:
    """The job as clients follow it: state, progress, and the outcome once there is one."""
    url = status_url(request, export)
    return {
        "id": export.pk,
        "state": export.state,
        "format": export.format,
        "percent": export.percent,
        "items_done": export.items_done,
        "items_total": export.items_total,
        "size": export.size,
        "sha256": export.sha256 or None,
        "file_name": export.file_name or None,
        "last_updated": iso(export.last_updated),
        "error": export.error or None,
        "created_on": iso(export.created_on),
        "started_on": iso(export.started_on),
        "finished_on": iso(export.finished_on),
        "url": url,
        "links": {
            "self": url,
            "export": absolute_url(request, resource_path(export)),
            "version": absolute_url(request, export.version.url),
        },
    }


def resource_path(export: Export) -> str:
    """The resource a job's archive is answered at: the version's export, or its delta from ``base``."""
    if export.base_id is None:
        return f"{export.version.url}export/?format={export.format}"
    return f"{export.version.url}export/delta/?{urlencode({'from': export.base.version, 'format': export.format})}"


def archive_url(request: Request, export: Export, reply: Reply) -> str:
    """Where a redirect to a completed export points.

    ``LOCATION``: a fresh one-use link of this service (the v1 contract). ``ARCHIVE``: a URL that
    answers 200 with the archive itself, as OCL v2's storage URLs do: a presigned S3 URL
    (EXPORT_PRESIGN_TTL), or with filesystem storage the one-use link, which streams the file.
    """
    if reply is Reply.ARCHIVE:
        presigned = get_storage().presigned_url(export.key, export.file_name, content_type(export.format))
        if presigned:
            return presigned
    return issue_location(request, export)


def repr_digest(sha256: str) -> str:
    """An RFC 9530 ``Repr-Digest`` value: ``sha-256=:<the digest in base64>:``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"


def renew_location(export: Export, request: HttpRequest, response: HttpResponseBase) -> None:
    response["Location"] = issue_location(request, export)


def answer(
    request: Request, situation: Situation, export: Export | None, detail: str = "", formats: tuple[str, ...] = ()
) -> Response:
    """The profile's answer to this request in this situation, with what goes with it."""
    planned = current_profile().answer(request.method or "GET", situation)
    code = planned.status
    if planned.reply is Reply.ERROR or (planned.reply is Reply.JOB and export is None):
        # (no job to describe: a concurrent request took the row away meanwhile)
        if situation is Situation.BUSY:
            raise Conflict(detail or None)
        raise NotFound(detail or "There is no export of this version.")
    if planned.reply in (Reply.LOCATION, Reply.ARCHIVE):
        assert export is not None
        headers = {
            "Location": archive_url(request, export, planned.reply),
            "Last-Updated": iso(export.last_updated) or "",
            "Last-Updated-Timezone": "UTC",
            "Cache-Control": NO_STORE,
        }
        if export.sha256:  # what the bytes behind the Location hash to: a client checks its download by it
            headers["Repr-Digest"] = repr_digest(export.sha256)
        response = Response(status=code, headers=headers)
        if planned.reply is Reply.LOCATION or not get_storage().is_remote:
            # The export's row and a one-use link of this service: kept (read_cache), with a new
            # link on every answer. A presigned URL's answer also checked the bucket: not kept.
            keep(response, refresh=partial(renew_location, export), reads=frozenset({"format"}))
        return response
    if planned.reply is Reply.JOB:
        assert export is not None
        return Response(
            describe(request, export),
            status=code,
            headers={"Link": f'<{status_url(request, export)}>; rel="status"', "Cache-Control": NO_STORE},
        )
    if planned.reply is Reply.STATE:
        # A completed export seen here is an out-of-date one of HEAD: as good as none.
        state = export.state if export is not None and export.state != ExportState.COMPLETED else NO_EXPORT
        headers = {STATE_HEADER: state, "Cache-Control": NO_STORE}
        if export is not None and export.is_active:
            headers["Retry-After"] = str(settings.EXPORT_HEARTBEAT_INTERVAL)
            headers["Link"] = f'<{status_url(request, export)}>; rel="status"'
        return Response(status=code, headers=headers)
    if planned.reply is Reply.DELETED:
        return Response({"detail": "Export deleted.", "formats": list(formats)}, status=code)
    return Response(status=code)


class ExportView(APIView):
    """One code path for both profiles: find the situation, answer what ``current_profile()`` says."""

    content_negotiation_class = JSONWhateverAccept
    # POST and DELETE count against RATE_LIMIT_EXPORT_WRITES
    throttle_classes = [ExportWriteThrottle]

    def version(self, request: Request, kwargs: dict[str, Any]) -> RepositoryVersion:
        repository = get_repository(request, kwargs)
        if kwargs["version"] == HEAD and not (current_profile().head_exportable and repository.is_admin(request.user)):
            raise MethodNotAllowed(
                request.method or "", detail="HEAD is the live state of the repository; export a version instead."
            )
        if request.method in ("POST", "DELETE") and not request.user.is_authenticated:
            raise NotAuthenticated()
        return get_version(repository, kwargs["version"])

    def get(self, request: Request, **kwargs: Any) -> Response:
        # Kept until the database changes (read_cache): a completed export's row is what every
        # client polls for, and each answer still gets a Location of its own.
        key = ("completed-export", request.user.pk, request.query_params.get("format"), *sorted(kwargs.items()))
        find = completed_first(
            key,
            lambda: completed_export(request, kwargs),
            version_of=lambda: self.version(request, kwargs),
            fmt=lambda: requested_format(request),
        )
        # A redirect straight to S3 (v2) must not meet a missing archive: the client hears 204
        # (ocldev then POSTs and waits) rather than S3's 404, and the failed row is built again.
        standing = where_export_stands(find, archive=ArchiveCheck.BEFORE_REDIRECT_TO_STORAGE)
        return answer(request, standing.situation, standing.export)

    def post(self, request: Request, **kwargs: Any) -> Response:
        version = self.version(request, kwargs)
        fmt = requested_format(request)
        where_export_stands(of_version(version, fmt))  # a dead job must not hold the 409 forever
        try:
            outcome = queue_export(version, fmt, request.user)
        except Conflict as exc:
            # Pending or processing already, or a concurrent request has just queued it.
            return answer(
                request, Situation.BUSY, where_export_stands(of_version(version, fmt)).export, str(exc.detail)
            )
        return answer(request, Situation.QUEUED if outcome.queued else Situation.READY, outcome.export)

    def delete(self, request: Request, **kwargs: Any) -> Response:
        """Without ``?format`` every format of the version goes; with it, only that one."""
        version = self.version(request, kwargs)
        if not version.repository.is_admin(request.user):
            raise PermissionDenied("Only administrators of this repository may delete its exports.")
        exports = Export.objects.filter(version=version, base=None)
        if request.query_params.get("format"):
            exports = exports.filter(format=requested_format(request))
        found = [(export, where_export_stands(known(export))) for export in exports]
        # Exports under way are cancelled (their rows stay, state cancelled); the others go.
        cancelled = [export for export, _ in found if cancel_export(export, request.user)]
        deleted = [export.format for export, standing in found if standing.situation is Situation.READY]
        for export, _ in found:
            if export not in cancelled:
                delete_export(export)  # the stored archive goes after the commit
        if cancelled:
            return answer(request, Situation.CANCELLED, cancelled[0])
        if not deleted:
            return answer(request, Situation.NONE, None)
        return answer(request, Situation.DELETED, None, formats=tuple(deleted))


class ExportStatusView(APIView):
    """``/exports/jobs/<id>/``: one export job. ``?wait=N`` holds the answer up to N seconds (at most
    MAX_WAIT_SECONDS) until the state changes. DELETE cancels the job (a repository admin's)."""

    content_negotiation_class = JSONWhateverAccept

    def get(self, request: Request, pk: int) -> Response:
        export = export_with_repository(pk)
        if export is None or not export.version.repository.can_view(request.user):
            raise NotFound("Export job not found.")
        where_export_stands(known(export))  # the row, healed where it lied, as it stands now
        wait = self.wait_seconds(request)
        if wait and export.is_active:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                time.sleep(WAIT_STEP_SECONDS)
                if Export.objects.filter(pk=export.pk).exclude(state=export.state).exists():
                    break
            export.refresh_from_db()
            where_export_stands(known(export))
        response = Response(describe(request, export), headers={"Cache-Control": NO_STORE})
        # A finished job's description is its row's alone; a live one's also depends on the queue.
        return response if export.is_active else keep(response, reads=frozenset({"wait"}))

    def delete(self, request: Request, pk: int) -> Response:
        """202 and the job, now cancelled; 409 when it had already finished (in both profiles)."""
        export = export_with_repository(pk)
        if export is None or not export.version.repository.can_view(request.user):
            raise NotFound("Export job not found.")
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        if not export.version.repository.is_admin(request.user):
            raise PermissionDenied("Only administrators of this repository may cancel its exports.")
        where_export_stands(known(export))
        if not cancel_export(export, request.user):
            raise Conflict(f"This export job has already ended ({export.state}); nothing to cancel.")
        return answer(request, Situation.CANCELLED, export)

    @staticmethod
    def wait_seconds(request: Request) -> float:
        raw = request.query_params.get("wait")
        if not raw:
            return 0
        try:
            return max(0.0, min(float(raw), MAX_WAIT_SECONDS))
        except ValueError as exc:
            raise ParseError("wait must be a number of seconds.") from exc


class DownloadView(APIView):
    """Redeems a one-use Location. Needs no credentials and ignores any it is sent (clients drop or
    keep the Authorization header across redirects as they please)."""

    authentication_classes: list = []
    permission_classes: list = []
    content_negotiation_class = JSONWhateverAccept

    def get(self, request: Request, token: str, file_name: str) -> HttpResponseBase:
        standing = where_export_stands(lambda: redeem_location(token, file_name), archive=ArchiveCheck.ALWAYS)
        if standing.healed is Healing.FAILED_MISSING_ARCHIVE:
            raise NotFound("There is no export of this version any more; request one with POST.")
        export = standing.export
        assert export is not None  # redeem_location raises rather than find nothing
        storage = get_storage()
        mime = content_type(export.format)
        if storage.is_remote:
            response: HttpResponseBase = HttpResponseRedirect(storage.presigned_url(export.key, export.file_name, mime))
        else:
            try:
                reader = storage.open_reader(export.key)
            except FileNotFoundError as exc:
                raise NotFound("The archive is missing from storage.") from exc
            response = FileResponse(reader, as_attachment=True, filename=export.file_name, content_type=mime)
            if export.size is not None:
                response["Content-Length"] = str(export.size)
        response["Date"] = http_date()
        response["Cache-Control"] = NO_STORE
        return response

    def head(self, request: Request, token: str, file_name: str) -> HttpResponseBase:
        """What a download would answer, from the export's row, without using the link up."""
        export = peek_location(token, file_name)
        response = HttpResponse(content_type=content_type(export.format))
        response["Content-Disposition"] = content_disposition(export.file_name)
        response["Date"] = http_date()
        response["Cache-Control"] = NO_STORE
        if export.size is not None:
            response["Content-Length"] = str(export.size)
        return response
