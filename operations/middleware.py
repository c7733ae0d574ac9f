"""Every request gets an id and is counted: the outermost middleware.

The id is the caller's ``X-Request-ID`` when it sends a sane one (a proxy's or a client's, so
one id follows a request across services), otherwise a new one; it is returned in the response's
``X-Request-ID`` and carried by every log line written while the request is answered. The count
and latency go to ``observability.metrics`` under the URL pattern's name, never the raw path: paths
hold repository and concept ids, which would make a new time series per item.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from observability import metrics
from observability.logs import request_id

HEADER = "X-Request-ID"
SANE_ID = re.compile(r"[!-~]{1,200}")  # printable ASCII, no spaces: safe in a header and a log field
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def new_request_id() -> str:
    """32 random hex digits, as unlikely to repeat as a UUID4's. From the process's Mersenne
    Twister (reseeded in each forked worker), not os.urandom: an id need not be unguessable, and a
    system call per request lets another thread take the GIL, which under load costs the request
    its turn."""
    return f"{random.getrandbits(128):032x}"


def route_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return match.url_name or match.view_name


class RequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        incoming = request.headers.get(HEADER, "")
        rid = incoming if SANE_ID.fullmatch(incoming) else new_request_id()
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = rid
        method = request.method if request.method in METHODS else "other"
        metrics.request_answered(route_name(request), method, response.status_code, time.perf_counter() - started)
        return response
