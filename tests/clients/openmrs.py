"""An emulation of the OpenMRS OCL subscription module's client (3.2.0), written from clients.md.

The module is Java; what it sends and what it insists on is reproduced here request for request,
so a test can tell whether a deployment still serves it:

- ``<subscription>/versions`` (no trailing slash): a JSON array of objects with a string ``id``;
  it skips ``HEAD`` and takes the newest version that has an export, released or not;
- a probe of ``<subscription>/<version>/export`` (no slash, redirects not followed) must answer
  200, 301, 302, 303 or 307; a subscription URL whose path has five slashes names a version and
  gets ``/export`` appended directly;
- the download follows at most 5 redirects, only 301/302/303/307, keeps the token on same-origin
  hops and drops it for another host, and needs a final 200 with a ``Date`` header;
- ``Content-Type`` exactly ``application/zip`` picks the zip branch; anything else is a gzip'd tar
  whose final URL path ends in a 14-digit stamp and ``.tgz``, with one member named exactly
  ``export.json``; concepts come before mappings in the JSON;
- incremental updates: ``GET <subscription>?includeMappings=true&includeConcepts=true&
  includeRetired=true&limit=100000&updatedSince=<yyyy-MM-ddTHH:mm:ssZ>`` with ``Compress: true``,
  read as a zip holding ``export.json``.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests

ACCEPTED_PROBES = (200, 301, 302, 303, 307)
FOLLOWED_REDIRECTS = (301, 302, 303, 307)
MAX_REDIRECTS = 5
TGZ_PATH = re.compile(r"\.\d{14}\.tgz$")
INCREMENTAL_LIMIT = 100000


class SubscriptionError(AssertionError):
    """What the module would report as a failed subscription."""


@dataclass(frozen=True)
class Release:
    version: str
    branch: str  # "zip" or "tgz"
    final_url: str
    hops: list[int]  # status codes of every response, redirects included
    body: dict[str, Any]


class OpenMrsSubscription:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    # --- requests, as the module's HTTP client makes them ------------------------------------

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token and _origin(url) == _origin(self.url):
            headers["Authorization"] = f"Token {self.token}"
        return headers

    def _get(self, url: str, **headers: str) -> requests.Response:
        return requests.get(url, headers={**self._headers(url), **headers}, allow_redirects=False, timeout=120)

    # --- a release ---------------------------------------------------------------------------

    def export_url(self) -> tuple[str, str]:
        """(version, export URL) of the release to import."""
        if urlsplit(self.url).path.count("/") == 5:
            return self.url.rsplit("/", 1)[1], f"{self.url}/export"
        versions = self._get(f"{self.url}/versions")
        if versions.status_code != 200:
            raise SubscriptionError(f"versions answered {versions.status_code}")
        listed = versions.json()
        if not isinstance(listed, list) or not all(isinstance(item.get("id"), str) for item in listed):
            raise SubscriptionError(f"versions is not an array of objects with a string id: {listed!r}")
        for item in listed:  # newest first
            if item["id"] == "HEAD":
                continue
            probe = self._get(f"{self.url}/{item['id']}/export")
            if probe.status_code in ACCEPTED_PROBES:
                return item["id"], f"{self.url}/{item['id']}/export"
        raise SubscriptionError("no version has an export")

    def latest_release(self) -> Release:
        version, url = self.export_url()
        hops: list[int] = []
        response = self._get(url)
        hops.append(response.status_code)
        for _ in range(MAX_REDIRECTS):
            if response.status_code not in FOLLOWED_REDIRECTS:
                break
            url = urljoin(url, response.headers["Location"])
            response = self._get(url)
            hops.append(response.status_code)
        if response.status_code != 200:
            raise SubscriptionError(f"the download ended with {response.status_code} after {hops}")
        if "Date" not in response.headers:
            raise SubscriptionError("the download has no Date header")
        if response.headers.get("Content-Type") == "application/zip":
            raw = _zip_member(response.content)
            branch = "zip"
        else:
            if not TGZ_PATH.search(urlsplit(url).path):
                raise SubscriptionError(f"a tgz whose URL path has no 14-digit stamp: {url}")
            with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as bundle:
                member = bundle.extractfile("export.json")
                if member is None:
                    raise SubscriptionError("no export.json in the tar")
                raw = member.read()
            branch = "tgz"
        return Release(version, branch, url, hops, _parsed(raw))

    # --- incremental updates -----------------------------------------------------------------

    def updates_since(self, since: datetime) -> dict[str, Any]:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            f"includeMappings=true&includeConcepts=true&includeRetired=true&limit={INCREMENTAL_LIMIT}"
            f"&updatedSince={stamp}"
        )
        response = self._get(f"{self.url}?{query}", Compress="true")
        if response.status_code != 200:
            raise SubscriptionError(f"the update answered {response.status_code}")
        return _parsed(_zip_member(response.content))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _zip_member(content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        return bundle.read("export.json")


def _parsed(raw: bytes) -> dict[str, Any]:
    concepts, mappings = raw.find(b'"concepts"'), raw.find(b'"mappings"')
    if not 0 <= concepts < mappings:
        raise SubscriptionError("concepts must come before mappings")
    return orjson.loads(raw)
