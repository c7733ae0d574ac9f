"""The mirror's HTTP client fetches exports and diffs the way OCL clients do, from either profile.

The upstream here is a scripted server on loopback (tests/mirror/scripted.py): each test states
the answers an OCL server gives in one case, and what the client must make of them.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from isal import igzip

from mirror.client import Upstream, UpstreamError, UpstreamUnavailable
from tests.mirror.scripted import Answer, Script, scripted_server

EXPORT_JSON = b'{"type": "Source Version", "id": "v1", "concepts": [], "mappings": []}'
REPO = "/orgs/CIEL/sources/CIEL/"
JSON = {"Content-Type": "application/json"}


def tgz(payload: bytes = EXPORT_JSON) -> bytes:
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("export.json")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return igzip.compress(raw.getvalue())


def zipped(payload: bytes = EXPORT_JSON) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.json", payload)
    return raw.getvalue()


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def upstream(base: str, token: str | None = "secret-token", sleeps: Sleeps | None = None) -> Upstream:
    return Upstream(f"{base}{REPO}", token, timeout=5, export_wait=60, sleep=sleeps if sleeps is not None else Sleeps())


def test_it_asks_for_a_missing_export_waits_as_told_and_follows_the_v1_redirects(tmp_path: Path) -> None:
    archive = tgz()
    script = Script(
        {
            f"GET {REPO}v1/export/": [
                Answer(204, headers={"X-Export-State": "none"}),
                Answer(204, headers={"X-Export-State": "pending", "Retry-After": "3"}),
                Answer(303, headers={"Location": "/exports/download/token/CIEL_v1.20150313000000.tgz"}),
            ],
            f"POST {REPO}v1/export/": [Answer(202, b'{"id": 1, "state": "pending"}', JSON)],
            "GET /exports/download/": [Answer(302, headers={"Location": "/storage/CIEL_v1.tgz?signed"})],
            "GET /storage/": [Answer(200, archive, {"Content-Type": "application/gzip"})],
        }
    )
    sleeps = Sleeps()
    with scripted_server(script) as base:
        download = upstream(base, sleeps=sleeps).fetch_export("v1", tmp_path)

    assert (download.kind, download.size, download.path.read_bytes()) == ("tgz", len(archive), archive)
    assert sleeps == [3.0]
    assert [(method, path.split("?")[0]) for method, path, _ in script.seen] == [
        ("GET", f"{REPO}v1/export/"),
        ("POST", f"{REPO}v1/export/"),
        ("GET", f"{REPO}v1/export/"),
        ("GET", f"{REPO}v1/export/"),
        ("GET", "/exports/download/token/CIEL_v1.20150313000000.tgz"),
        ("GET", "/storage/CIEL_v1.tgz"),
    ]
    assert all(headers.get("Authorization") == "Token secret-token" for _, _, headers in script.seen)


def test_it_waits_on_208_and_takes_a_v2_redirect_to_storage_without_the_token(tmp_path: Path) -> None:
    archive = zipped()
    storage = Script({"GET /bucket/": [Answer(200, archive, {"Content-Type": "application/zip"})]})
    with scripted_server(storage) as storage_base:
        script = Script(
            {
                f"GET {REPO}v1/export/": [
                    Answer(204),
                    Answer(208, headers={"Retry-After": "1"}),
                    *[Answer(208)] * 5,
                    Answer(302, headers={"Location": f"{storage_base}/bucket/CIEL_v1.zip?X-Amz-Signature=x"}),
                ],
                f"POST {REPO}v1/export/": [Answer(202, b"{}", JSON)],
            }
        )
        sleeps = Sleeps()
        with scripted_server(script) as base:
            download = upstream(base, sleeps=sleeps).fetch_export("v1", tmp_path)

    assert (download.kind, download.path.read_bytes()) == ("zip", archive)
    # Retry-After when given; otherwise a pause doubling from a quarter second up to five
    assert sleeps == [1.0, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert "Authorization" not in storage.seen[0][2]  # another host: the token stays home


def test_it_does_not_ask_twice_while_an_export_is_being_produced(tmp_path: Path) -> None:
    script = Script(
        {
            f"GET {REPO}v1/export/": [
                Answer(204),
                Answer(204, headers={"X-Export-State": "processing", "Retry-After": "1"}),
                Answer(200, zipped(), {"Content-Type": "application/zip"}),
            ],
            f"POST {REPO}v1/export/": [Answer(409, b'{"detail": "already"}', JSON)],
        }
    )
    with scripted_server(script) as base:
        download = upstream(base).fetch_export("v1", tmp_path)
    assert download.kind == "zip"
    assert [method for method, _, _ in script.seen].count("POST") == 1


def test_a_missing_export_it_may_not_ask_for_is_an_error_not_a_wait(tmp_path: Path) -> None:
    script = Script(
        {
            f"GET {REPO}v1/export/": [Answer(204)],
            f"POST {REPO}v1/export/": [
                Answer(401, b'{"detail": "Authentication credentials were not provided."}', JSON)
            ],
        }
    )
    with scripted_server(script) as base, pytest.raises(UpstreamError, match="asking for one failed") as caught:
        upstream(base, token=None).fetch_export("v1", tmp_path)
    assert not isinstance(caught.value, UpstreamUnavailable)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(500, b'{"detail": "boom"}', JSON),
        Answer(503, b"{}", {"Retry-After": "30", **JSON}),
        Answer(200, tgz(), {"Content-Type": "application/gzip"}, cut_after=40),
        Answer(200, tgz()[:-30] + b"\0" * 30, {"Content-Type": "application/gzip"}),
        Answer(200, zipped()[:60] + b"x" * 20 + zipped()[80:], {"Content-Type": "application/zip"}),
    ],
    ids=["500", "503", "cut", "damaged-tgz", "damaged-zip"],
)
def test_temporary_failures_are_told_apart_for_another_attempt(answer: Answer, tmp_path: Path) -> None:
    script = Script({f"GET {REPO}v1/export/": [answer]})
    with scripted_server(script) as base, pytest.raises(UpstreamUnavailable):
        upstream(base).fetch_export("v1", tmp_path)


def test_a_refused_connection_is_temporary(tmp_path: Path) -> None:
    with scripted_server(Script({})) as base:
        pass  # the port is closed again
    with pytest.raises(UpstreamUnavailable, match="ConnectionError"):
        upstream(base).fetch_export("v1", tmp_path)


def test_an_unknown_version_is_a_plain_error(tmp_path: Path) -> None:
    with scripted_server(Script({})) as base, pytest.raises(UpstreamError, match="404") as caught:
        upstream(base).fetch_export("v9", tmp_path)
    assert not isinstance(caught.value, UpstreamUnavailable)


def test_a_diff_asks_for_everything_since_the_instant_compressed(tmp_path: Path) -> None:
    body = zipped(b'{"type": "Source", "concepts": [], "mappings": []}')
    script = Script({f"GET {REPO}?": [Answer(200, body, {"Content-Type": "application/zip"})]})
    since = datetime(2015, 3, 13, 12, 30, 5, 120000, tzinfo=UTC)
    with scripted_server(script) as base:
        download = upstream(base).fetch_changes(since, tmp_path)

    _, path, headers = script.seen[0]
    query = {key: values[0] for key, values in parse_qs(urlsplit(path).query).items()}
    assert query == {
        "includeConcepts": "true",
        "includeMappings": "true",
        "includeRetired": "true",
        "includeRemoved": "true",  # this service adds what left HEAD; OCL v2 ignores it
        "limit": "0",
        "updatedSince": "2015-03-13T12:30:05.120000Z",
    }
    assert headers["Compress"] == "true"
    assert (download.kind, download.path.read_bytes()) == ("zip", body)


def test_released_versions_come_oldest_first_without_head_or_unreleased_ones() -> None:
    listing = (
        b'[{"id": "HEAD", "released": false}, {"id": "v3", "released": false}, '
        b'{"id": "v2", "released": true}, {"id": "v1", "released": true}]'
    )
    script = Script({f"GET {REPO}versions/": [Answer(200, listing, JSON)]})
    with scripted_server(script) as base:
        assert upstream(base).released_versions() == ["v1", "v2"]
