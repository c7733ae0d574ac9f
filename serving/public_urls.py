"""Absolute URLs that the service hands out: Locations, job status links, ``describe()`` links.

A client follows these, so they must name this service, never whatever the request's ``Host``
header said: with ``ALLOWED_HOSTS=*`` a request with ``Host: evil.example`` would otherwise be
answered with a Location on evil.example (host header poisoning). With ``PUBLIC_BASE_URL`` set,
every absolute URL starts with it; without it, the request's host is used, which settings only
allow when ``ALLOWED_HOSTS`` lists the hosts (the default is loopback only).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def absolute_url(request: HttpRequest, path: str) -> str:
    """``path`` (server-relative, starting with ``/``) as an absolute URL on this service."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    return request.build_absolute_uri(path)
