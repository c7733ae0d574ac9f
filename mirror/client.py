"""Talking to an upstream OCL server as its clients do: its versions, a version's export, a diff.

Only HTTP lives here, and the only thing it writes is a downloaded file; applying that file is
the importer's job. The same code speaks to OCL v2 and to this service in either profile:

- an export: GET ``.../:version/export/``; 200 is the archive itself, 301/302/303/307 lead to it
  (this service's one-use link then 302s on to storage; OCL v2 302s straight to storage); 204 means
  "none" (or, with ``X-Export-State``, "under way"), so the client POSTs once when allowed; 208
  means "being produced". It waits as long as the server's ``Retry-After`` says, up to a limit.
- a delta (this service): GET ``.../:B/export/delta/?from=A``, answered as an export is (so the
  same waiting, POSTing and redirects), except that a POST answers 409 (v2: 208) while B's full
  export, whose sha256 the delta carries, is still being made: it is asked again after a pause.
  A 404 (no such resource on OCL v2; here, no delta joins the pair) or a 400 is :class:`NoDelta`.
- checksums (``verify``): this service lists a version's ``{id, version, checksums}`` per item at
  ``.../:version/checksums/`` in one streamed answer; an upstream without it (OCL v2) is read a
  page at a time from its brief item listings with ``checksums=true``.
- a diff: GET the repository with ``updatedSince`` and ``limit=0`` and ``Compress: true``; a zip
  holding ``export.json`` comes back (or plain JSON from servers that ignore the header). It asks
  ``includeRemoved=true`` too: this service adds what left HEAD since the instant (``removed``);
  OCL v2 ignores the parameter and its answer has no such list.
- HEAD's members: the ids of every concept and mapping HEAD holds, from the paged ``brief``
  listings (``.../concepts/?brief=true&page=N``), written as a diff with a ``members`` list, for
  an upstream that lists no removals. Only ids travel, a page at a time.

A failure worth another attempt (connection refused or cut, timeouts, 5xx, 429, a damaged
archive, an export that does not get ready in time) is :class:`UpstreamUnavailable`; anything
else (404, 401/403, nonsense answers) is :class:`UpstreamError`. An archive is damaged
(:class:`Damaged`) when it does not read through, or when its sha256 is not the one the answer
that led to it announced (``Repr-Digest``, RFC 9530, which this service sends with a Location).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import orjson
import requests
from isal import igzip

logger = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
TEMPORARY = frozenset({408, 425, 429, 500, 502, 503, 504})
WAITING = frozenset({204, 208})
DEFAULT_WAIT = 5  # seconds between polls when the server sends no Retry-After (at most; see poll_wait)
FIRST_POLL = 0.25  # the first of those pauses, doubling up to DEFAULT_WAIT
MAX_WAIT = 300
MAX_POSTS = 2  # a failed upstream export may be asked for once more
CHUNK = 1 << 20
MEMBERS_PAGE = 1000  # items per page of a members listing
PAGE = 1000  # items per page of an OCL v2 listing
USER_AGENT = "ocl-export-mirror/1"
LABELS = {"concepts": "Concept", "mappings": "Mapping"}
LISTS = ("concepts", "mappings", "references", "removed", "members")
MAGIC = {b"PK\x03\x04": "zip", b"\x1f\x8b": "tgz"}


class UpstreamError(Exception):
    """The upstream answered something this run cannot get past."""


class UpstreamUnavailable(UpstreamError):
    """Down, slow, 5xx, 429, a cut or damaged download: another attempt may succeed, no sooner
    than ``retry_after`` seconds when the upstream said so (a 429 or 503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Damaged(UpstreamUnavailable):
    """A download that does not read through, or whose sha256 is not the one announced."""


class NoDelta(UpstreamError):
    """The upstream offers no delta for this pair (no such resource, or none joins the two)."""


@dataclass(frozen=True)
class Download:
    path: Path
    size: int  # bytes received
    kind: str  # "tgz", "zip" or "json"
    url: str  # where the bytes came from, after redirects
    sha256: str = ""  # of the bytes received
    announced: str | None = None  # the sha256 the upstream announced for them (Repr-Digest), if it did


def announced_sha256(response: requests.Response) -> str | None:
    """The sha-256 of an RFC 9530 ``Repr-Digest`` header, as hex; None without one."""
    for member in response.headers.get("Repr-Digest", "").split(","):
        name, _, value = member.strip().partition("=")
        if name.strip().lower() == "sha-256" and value.startswith(":") and value.endswith(":"):
            try:
                return base64.b64decode(value[1:-1], validate=True).hex()
            except (binascii.Error, ValueError):
                return None
    return None


def iso_z(value: datetime) -> str:
    """An instant as updatedSince wants it: ISO 8601 in UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def poll_wait(response: requests.Response, polls: int) -> float:
    """How long to wait before asking again about something under way, after ``polls`` waits: the
    server's ``Retry-After``, else a pause that doubles from FIRST_POLL up to DEFAULT_WAIT (OCL v2
    says nothing): a small export is picked up within a second, a long one is asked about every
    DEFAULT_WAIT seconds, a handful of requests more in all."""
    if "Retry-After" in response.headers:
        return retry_after(response)
    return min(DEFAULT_WAIT, FIRST_POLL * 2**polls)


def retry_after(response: requests.Response) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return min(max(float(raw), 0.1), MAX_WAIT)
    except ValueError:
        return DEFAULT_WAIT


class Upstream:
    """One upstream repository (``https://host/orgs/X/sources/Y/``), with the token to send."""

    def __init__(
        self,
        repo_url: str,
        token: str | None = None,
        *,
        timeout: float = 60,
        export_wait: float = 3600,
        sleep: Callable[[float], None] = time.sleep,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.repo_url = repo_url if repo_url.endswith("/") else repo_url + "/"
        self.timeout = timeout
        self.export_wait = export_wait
        self.sleep = sleep
        self.on_bytes = on_bytes
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        # requests drops this header itself when a redirect leaves the host (storage URLs).
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def close(self) -> None:
        self.session.close()

    # --- requests ---------------------------------------------------------------------------

    def _request(
        self, method: str, url: str, passing: frozenset[int] = frozenset(), **kwargs: Any
    ) -> requests.Response:
        """The answer; a status in ``passing`` comes back as any other instead of raising."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__} on {method} {url}: {_short(exc)}") from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"{type(exc).__name__} on {method} {url}: {_short(exc)}") from exc
        if response.status_code in TEMPORARY:
            response.close()
            wait = retry_after(response) if "Retry-After" in response.headers else None
            raise UpstreamUnavailable(f"HTTP {response.status_code} on {method} {url}", wait)
        if response.status_code in (401, 403, 404) and response.status_code not in passing:
            detail = _detail(response)
            response.close()
            raise UpstreamError(f"HTTP {response.status_code} on {method} {url}{detail}")
        return response

    def _json(self, url: str) -> Any:
        response = self._request("GET", url)
        if response.status_code != 200:
            raise UpstreamError(f"GET {url}: unexpected status {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamUnavailable(f"GET {url}: the answer is not JSON") from exc

    # --- versions ---------------------------------------------------------------------------

    def released_versions(self) -> list[str]:
        """Ids of the upstream's released versions, oldest first (servers list newest first)."""
        found = self._json(f"{self.repo_url}versions/?limit=1000")
        if isinstance(found, dict):  # a paginated answer
            found = found.get("results") or []
        if not isinstance(found, list):
            raise UpstreamError(f"{self.repo_url}versions/ did not answer a list of versions")
        ids = [str(v["id"]) for v in found if isinstance(v, dict) and v.get("released") and v.get("id") != "HEAD"]
        return list(reversed(ids))

    def version_checksums(self) -> dict[str, dict[str, Any]]:
        """Every version's ``checksums`` as the upstream states them (``versions/?checksums=true``),
        by version id, HEAD included; empty when it states none."""
        found = self._json(f"{self.repo_url}versions/?limit=1000&checksums=true")
        if isinstance(found, dict):  # a paginated answer
            found = found.get("results") or []
        if not isinstance(found, list):
            raise UpstreamError(f"{self.repo_url}versions/ did not answer a list of versions")
        return {
            str(v["id"]): v["checksums"] for v in found if isinstance(v, dict) and isinstance(v.get("checksums"), dict)
        }

    # --- an export --------------------------------------------------------------------------

    def fetch_export(self, version: str, directory: Path, create: bool = True) -> Download:
        """Download ``version``'s export into ``directory``, asking for one when there is none."""
        url = f"{self.repo_url}{version}/export/"
        deadline = time.monotonic() + self.export_wait
        posts = polls = 0
        while True:
            response = self._request("GET", url, allow_redirects=False, stream=True)
            status = response.status_code
            if status == 200:
                return self._save(response, directory, f"{version}-export")
            if status in REDIRECTS:
                response.close()
                return self._download(
                    urljoin(url, response.headers["Location"]),
                    directory,
                    f"{version}-export",
                    announced_sha256(response),
                )
            if status not in WAITING:
                response.close()
                raise UpstreamError(f"GET {url}: unexpected status {status}")
            response.close()
            state = response.headers.get("X-Export-State", "none" if status == 204 else "processing")
            if state in ("none", "failed"):
                if not create:
                    raise UpstreamError(
                        f"{url}: the upstream has no export of {version} and this run may not ask for one"
                    )
                if posts >= MAX_POSTS:
                    raise UpstreamUnavailable(f"{url}: the upstream's export of {version} failed {posts} times")
                posts += 1
                found = self._ask_for_export(url, directory, version)
                if found is not None:
                    return found
                continue  # the next GET tells how long the new job wants
            pause = poll_wait(response, polls)
            if time.monotonic() + pause > deadline:
                raise UpstreamUnavailable(f"{url}: the export was not ready within {self.export_wait:.0f} s")
            self.sleep(pause)
            polls += 1

    def _ask_for_export(self, url: str, directory: Path, version: str) -> Download | None:
        """POST the export; a download when it turns out to exist, None when it is now under way."""
        try:
            response = self._request("POST", url, allow_redirects=False)
        except UpstreamError as exc:
            if isinstance(exc, UpstreamUnavailable):
                raise
            raise UpstreamError(
                f"{url}: the upstream has no export of {version}, and asking for one failed ({exc})"
            ) from exc
        response.close()
        if response.status_code in REDIRECTS:
            return self._download(
                urljoin(url, response.headers["Location"]), directory, f"{version}-export", announced_sha256(response)
            )
        if response.status_code in (200, 201, 202, 208, 409):  # queued, or already being produced
            return None
        raise UpstreamError(f"POST {url}: unexpected status {response.status_code}")

    # --- a delta ----------------------------------------------------------------------------

    def fetch_delta(self, version: str, base: str, directory: Path) -> Download:
        """Download the delta from ``base`` to ``version`` into ``directory``, asking for it when
        there is none; :class:`NoDelta` when the upstream offers none for the pair."""
        url = f"{self.repo_url}{version}/export/delta/?{urlencode({'from': base})}"
        stem = f"{version}-delta-{base}"
        deadline = time.monotonic() + self.export_wait
        failed = polls = 0
        no_delta = frozenset({400, 404})
        while True:
            response = self._request("GET", url, no_delta, allow_redirects=False, stream=True)
            status = response.status_code
            detail = _detail(response) if status in no_delta else ""
            response.close()
            if status in no_delta:
                raise NoDelta(f"GET {url}: HTTP {status}{detail}")
            if status in REDIRECTS:
                return self._download(
                    urljoin(url, response.headers["Location"]), directory, stem, announced_sha256(response)
                )
            if status not in WAITING:
                raise UpstreamError(f"GET {url}: unexpected status {status}")
            pause = poll_wait(response, polls)
            if response.headers.get("X-Export-State", "none" if status == 204 else "processing") in ("none", "failed"):
                if response.headers.get("X-Export-State") == "failed":
                    failed += 1
                    if failed > MAX_POSTS:  # the whole archive may still come
                        raise NoDelta(f"{url}: the upstream's delta failed {failed} times")
                asked = self._request("POST", url, no_delta | {401, 403}, allow_redirects=False)
                asked.close()
                if asked.status_code in no_delta | {401, 403}:
                    raise NoDelta(f"POST {url}: HTTP {asked.status_code}{_detail(asked)}")
                if asked.status_code in REDIRECTS:
                    location = urljoin(url, asked.headers["Location"])
                    return self._download(location, directory, stem, announced_sha256(asked))
                if asked.status_code not in (200, 201, 202, 208, 409):
                    raise UpstreamError(f"POST {url}: unexpected status {asked.status_code}")
                # 202: queued, the next GET says how long; 409/208: B's full export comes first.
                pause = poll_wait(asked, polls) if asked.status_code in (208, 409) else 0.1
            if time.monotonic() + pause > deadline:
                raise UpstreamUnavailable(f"{url}: the delta was not ready within {self.export_wait:.0f} s")
            self.sleep(pause)
            polls += 1

    def _download(self, url: str, directory: Path, stem: str, announced: str | None = None) -> Download:
        # Redirects from here on lead to the file (a one-use link, then storage): follow them.
        # The token goes to the upstream's own host only, as requests does on its redirects.
        same_host = urlsplit(url).netloc == urlsplit(self.repo_url).netloc
        headers = {} if same_host else {"Authorization": None}
        response = self._request("GET", url, allow_redirects=True, stream=True, headers=headers)
        if response.status_code != 200:
            response.close()
            raise UpstreamError(f"GET {url}: unexpected status {response.status_code} for an archive")
        return self._save(response, directory, stem, announced)

    # --- a diff -----------------------------------------------------------------------------

    def fetch_changes(self, since: datetime | None, directory: Path) -> Download:
        """The repository's HEAD items updated at or after ``since`` (everything without it)."""
        params = {
            "includeConcepts": "true",
            "includeMappings": "true",
            "includeRetired": "true",
            "includeRemoved": "true",
            "limit": "0",
        }
        if since is not None:
            params["updatedSince"] = iso_z(since)
        url = f"{self.repo_url}?{urlencode(params)}"
        response = self._request("GET", url, headers={"Compress": "true"}, stream=True)
        if response.status_code != 200:
            response.close()
            raise UpstreamError(f"GET {url}: unexpected status {response.status_code}")
        return self._save(response, directory, "changes")

    # --- HEAD's members ---------------------------------------------------------------------

    def fetch_members(self, directory: Path) -> Download:
        """A diff naming every item the upstream's HEAD holds and delivering none (see the module)."""
        repository = self._json(self.repo_url)
        if not isinstance(repository, dict) or not repository.get("type"):
            raise UpstreamError(f"GET {self.repo_url}: the answer is not a repository")
        path = directory / "members.json"
        size = 0
        with open(path, "wb") as out:
            top = orjson.dumps({key: value for key, value in repository.items() if key not in LISTS})
            out.write(top[:-1] + b',"concepts":[],"mappings":[],"members":[')
            separator = b""
            for kind in ("concepts", "mappings"):
                for entry in self._members(kind):
                    out.write(separator + orjson.dumps(entry))
                    separator = b","
            out.write(b"]}")
            size = out.tell()
        return Download(path, size, "json", self.repo_url)

    def _members(self, kind: str) -> Iterator[dict[str, str]]:
        """``{"type", "url"}`` of each item of ``kind`` in HEAD, a page at a time; a listing that
        changes while it is read (its ``num_found`` moves) is refused, to be read again later."""
        found: str | None = None
        page = 1
        while True:
            params = {"brief": "true", "includeRetired": "true", "limit": str(MEMBERS_PAGE), "page": str(page)}
            url = f"{self.repo_url}{kind}/?{urlencode(params)}"
            response = self._request("GET", url)
            if response.status_code != 200:
                raise UpstreamError(f"GET {url}: unexpected status {response.status_code}")
            total = response.headers.get("num_found")
            if found is not None and total != found:
                raise UpstreamUnavailable(f"{url}: the listing changed while it was read ({found} then {total} items)")
            found = total
            try:
                items = response.json()
            except ValueError as exc:
                raise UpstreamUnavailable(f"GET {url}: the answer is not JSON") from exc
            if isinstance(items, dict):
                items = items.get("results")
            if not isinstance(items, list):
                raise UpstreamError(f"GET {url}: the answer is not a list of {kind}")
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                    raise UpstreamError(f"GET {url}: an item without its url")
                yield {"type": LABELS[kind], "url": item["url"]}
            if len(items) < MEMBERS_PAGE:
                return
            page += 1

    # --- checksums --------------------------------------------------------------------------

    def checksum_listing(self, version: str) -> Iterator[bytes] | None:
        """This service's checksum listing of ``version``, as the bytes arrive (never held whole);
        None when the upstream has no such resource (404: OCL v2)."""
        url = f"{self.repo_url}{version}/checksums/"
        response = self._request("GET", url, frozenset({404}), stream=True)
        if response.status_code != 200:
            response.close()
            if response.status_code == 404:
                return None
            raise UpstreamError(f"GET {url}: unexpected status {response.status_code}")
        return self._chunks(url, response)

    def _chunks(self, url: str, response: requests.Response) -> Iterator[bytes]:
        with response:
            try:
                yield from response.iter_content(CHUNK)
            except requests.RequestException as exc:
                raise UpstreamUnavailable(f"GET {url}: the answer was cut ({_short(exc)})") from exc

    def checksum_pages(self, version: str) -> Iterator[ChecksumEntry]:
        """The entries of every concept and mapping ``version`` holds, from OCL v2's brief pages."""
        return self._paged_entries(version)

    def _paged_entries(self, version: str) -> Iterator[ChecksumEntry]:
        for kind in ("concepts", "mappings"):
            page = 1
            while True:
                params = {"brief": "true", "checksums": "true", "includeRetired": "true", "limit": PAGE, "page": page}
                url = f"{self.repo_url}{version}/{kind}/?{urlencode(params)}"
                items = self._json(url)
                if isinstance(items, dict):
                    items = items.get("results")
                if not isinstance(items, list):
                    raise UpstreamError(f"GET {url}: the answer is not a list of {kind}")
                for item in items:
                    yield checksum_entry(url, kind, item)
                if len(items) < PAGE:
                    break
                page += 1

    # --- files ------------------------------------------------------------------------------

    def _save(self, response: requests.Response, directory: Path, stem: str, announced: str | None = None) -> Download:
        """Stream the body to a file named for its kind; a cut or damaged body is temporary."""
        path = directory / f"{stem}.part"
        size = 0
        digest = hashlib.sha256()
        try:
            with response, open(path, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if self.on_bytes is not None:
                        self.on_bytes(len(chunk))
        except requests.RequestException as exc:
            path.unlink(missing_ok=True)
            raise UpstreamUnavailable(
                f"GET {response.url}: the download was cut after {size} bytes ({_short(exc)})"
            ) from exc
        with open(path, "rb") as stream:
            head = stream.read(4)
        kind = next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), "json")
        final = directory / f"{stem}.{kind}"
        path.rename(final)
        if announced is not None and digest.hexdigest() != announced:
            final.unlink()
            raise Damaged(
                f"GET {response.url}: the {size:,} bytes received have sha256 {digest.hexdigest()}, "
                f"the upstream announced {announced}"
            )
        check_archive(final, kind, response.url)
        return Download(final, size, kind, response.url, digest.hexdigest(), announced)


# (list, item id, version id, standard checksum, smart checksum)
ChecksumEntry = tuple[str, str, str, str | None, str | None]


def checksum_entry(url: str, kind: str, item: Any) -> ChecksumEntry:
    """One item of a checksum listing or of a brief page (OCL v2 names the version in its
    ``version_url``); an item without an id or checksums is not something to compare."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("checksums"), dict):
        raise UpstreamError(f"{url}: an item without its id or its checksums: {str(item)[:200]}")
    version = item.get("version")
    if not isinstance(version, str):
        version = str(item.get("version_url") or "").rstrip("/").rpartition("/")[2]
    checksums = item["checksums"]
    return kind, item["id"], version, checksums.get("standard"), checksums.get("smart")


def check_archive(path: Path, kind: str, url: str) -> None:
    """Read a downloaded archive through once: a damaged one is refused before the import sees it."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                if bad is not None:
                    raise zipfile.BadZipFile(f"bad CRC in {bad}")
        elif kind == "tgz":
            with igzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as archive:
                for member in archive:
                    extracted = archive.extractfile(member)
                    while extracted is not None and extracted.read(CHUNK):
                        pass
                # tar stops at its end marker; the gzip trailer (CRC, length) comes after it
                while raw.read(CHUNK):
                    pass
    except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise Damaged(f"{url}: the downloaded {kind} archive is damaged ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _detail(response: requests.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    return f" ({detail})" if detail else ""
