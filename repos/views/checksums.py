"""``:repo/:version/checksums/``: every item's id, version id and OCL checksums, streamed.

What a mirror (or anyone holding a copy) compares with this server to learn which items differ,
without downloading the items: see :mod:`repos.checksum_store`. ``HEAD`` and ``latest`` work as
version names; retired items are listed too, as the export holds them.
"""

from __future__ import annotations

from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.request import Request

from repos.checksum_store import stream_listing
from repos.lookups import get_repository_version
from repos.views.base import ReadAPIView
from repos.views.streaming import body_response


class VersionChecksumsView(ReadAPIView):
    def get(self, request: Request, **kwargs: Any) -> HttpResponseBase:
        version = get_repository_version(request, kwargs, kwargs["version"])
        return body_response(request, stream_listing(version), stream=True)
