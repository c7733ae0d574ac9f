"""One JSON error shape for everything: ``{"detail": "..."}``, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

from django.db import OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The job queue is unavailable; try again shortly."
    default_code = "service_unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 30) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "An export of this version is already pending or processing."
    default_code = "conflict"


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "This download link has been used or has expired; request a new one."
    default_code = "gone"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, OperationalError):
        # The database is unreachable or busy (a locked SQLite file, a restarting PostgreSQL):
        # temporary, and nothing was changed, so say when to try again.
        logger.warning("Database unavailable in %s: %s", context.get("view"), exc)
        exc = ServiceUnavailable("The database is busy or unavailable; try again shortly.", retry_after=5)
    response = drf_exception_handler(exc, context)
    if response is None:
        # Unexpected: log it with its traceback and still answer JSON.
        logger.exception("Unhandled error in %s", context.get("view"), exc_info=exc)
        return Response({"detail": "Internal server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(exc.retry_after)
    if isinstance(response.data, dict) and "detail" not in response.data:
        response.data = {"detail": "Invalid request.", "errors": response.data}
    elif isinstance(response.data, list):
        response.data = {"detail": " ".join(str(item) for item in response.data)}
    return response


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Bad request."}, status=400)


def json_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Permission denied."}, status=403)


def json_500(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error."}, status=500)


__all__ = [
    "Conflict",
    "Gone",
    "Http404",
    "ServiceUnavailable",
    "exception_handler",
    "json_400",
    "json_403",
    "json_404",
    "json_500",
]
