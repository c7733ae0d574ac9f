"""Turning representation bytes into HTTP responses: buffered, streamed, or zipped on the fly.

The zip comes from :func:`foundation.archive.iter_zip`, the project's one zip writer (the export
archives use it too): it streams, and writes zip64 records only when sizes need them, which is
what strictly streaming readers such as Java's ``ZipInputStream`` (OpenMRS) expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from rest_framework.request import Request

from foundation.archive import MEMBER, iter_zip
from repos.representation.encoding import dumps

JSON = "application/json"
ZIP = "application/zip"


def wants_zip(request: Request) -> bool:
    """OpenMRS asks for a zipped body with the request header ``Compress: true``."""
    return request.headers.get("Compress", "").strip().lower() == "true"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    """A JSON body through the one encoder, so timestamps look the same everywhere."""
    return HttpResponse(dumps(data), status=status, content_type=JSON, headers=headers)


def body_response(
    request: Request, chunks: Iterator[bytes], *, stream: bool, headers: dict[str, str] | None = None
) -> HttpResponseBase:
    """The body of a read: zipped when asked, streamed when unbounded, headers only for HEAD.

    HEAD answers the headers GET would send: a streamed body has no length, so its item queries
    never run; a buffered one is built to state its Content-Length, then dropped.
    """
    compress = wants_zip(request)
    content_type = ZIP if compress else JSON
    head = request.method == "HEAD"
    if compress or stream:
        # Streamed: rows are read and (for a zip) compressed as the client receives them.
        body: Iterator[bytes] = iter(()) if head else iter_zip(chunks, MEMBER) if compress else chunks
        return StreamingHttpResponse(body, content_type=content_type, headers=headers)
    content = b"".join(chunks)
    if not head:
        return HttpResponse(content, content_type=content_type, headers=headers)
    response = HttpResponse(b"", content_type=content_type, headers=headers)
    response["Content-Length"] = str(len(content))
    return response
