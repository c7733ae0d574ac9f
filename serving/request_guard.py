"""Refuses, before any view runs, what no URL or query of this API can mean: a NUL character.

PostgreSQL text cannot hold NUL (0x00), so a ``%00`` that reached a lookup made the query itself
fail and the request answered 500, on every route that names an owner, repository, version, item,
export or user. Checking each lookup would leave the next new route open; one check here covers
them all. A path with NUL names nothing that can exist (404, as any unknown path); a query
parameter with NUL is a malformed request (400).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from foundation.errors import json_404

NUL = "\x00"


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if NUL in request.path_info:
            return json_404(request)
        if NUL in request.META.get("QUERY_STRING", "") or any(
            NUL in key or any(NUL in value for value in values) for key, values in request.GET.lists()
        ):
            return JsonResponse({"detail": "A query parameter contains a NUL character."}, status=400)
        return self.get_response(request)
