"""What a mirror checks, against a scripted upstream: a download against the sha256 announced
with it (``Repr-Digest``), and ``verify`` against an OCL v2 upstream's brief pages of checksums.

The pages carry checksums computed here with ``ocldev`` from the upstream's own JSON of each item,
not read from the mirror's rows, so an equal verdict means the mirror's stored checksums agree
with what OCL's code makes of the upstream's items.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mirror.client import Damaged, Upstream, announced_sha256
from mirror.models import Subscription, subscribe
from mirror.sync import sync
from repos.checksums import item_checksums
from repos.models import RepositoryVersion
from tests.mirror.ocl_v2 import JSON, REPO, ZIP, script_for, zipped
from tests.mirror.scripted import Answer, scripted_server


def digest_header(data: bytes) -> dict[str, str]:
    return {"Repr-Digest": f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"}


def test_the_announced_sha256_is_read_from_repr_digest() -> None:
    class Response:
        headers = {"Repr-Digest": "md5=:AAAA:, sha-256=:" + base64.b64encode(bytes(range(32))).decode() + ":"}

    assert announced_sha256(Response()) == bytes(range(32)).hex()  # type: ignore[arg-type]
    Response.headers = {}
    assert announced_sha256(Response()) is None  # type: ignore[arg-type]


@pytest.mark.django_db
def test_a_download_is_refused_unless_it_hashes_to_the_sha256_announced_with_it(upstream_files, tmp_path: Path) -> None:
    archive = zipped(upstream_files["v1"])
    damaged = archive[:-30] + bytes(30)  # the end of the zip zeroed
    script = script_for(upstream_files)
    redirect = {"Location": "/files/v1.zip", **digest_header(archive)}
    script.answers[f"GET {REPO}v1/export/"] = [Answer(303, b"", redirect)]
    script.answers["GET /files/v1.zip"] = [Answer(200, damaged, ZIP), Answer(200, archive, ZIP)]
    with scripted_server(script) as base:
        upstream = Upstream(f"{base}{REPO}")
        with pytest.raises(Damaged, match="the upstream announced " + hashlib.sha256(archive).hexdigest()):
            upstream.fetch_export("v1", tmp_path)
        assert not list(tmp_path.iterdir())  # nothing of it kept
        download = upstream.fetch_export("v1", tmp_path)
    assert download.sha256 == download.announced == hashlib.sha256(archive).hexdigest()


def brief_page(body: bytes, kind: str) -> list[dict]:
    """OCL v2's brief listing of ``kind`` with ``checksums=true``: ids, URLs and ocldev's checksums."""
    page = []
    for item in json.loads(body)[kind]:
        standard, smart = item_checksums(kind, json.dumps(item))
        page.append(
            {
                "id": item["id"],
                "url": item["url"],
                "version_url": f"{item['url']}{item['version']}/",
                "checksums": {"standard": standard, "smart": smart},
            }
        )
    return page


def verify_exit(subscription_id: int, capsys) -> tuple[int, str]:
    try:
        call_command("verify", str(subscription_id))
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    except CommandError as exc:  # what manage.py turns into its exit status
        code = exc.returncode
    return code, capsys.readouterr().out


@pytest.mark.django_db
def test_verify_compares_a_mirror_of_an_ocl_v2_upstream_by_its_brief_pages(
    upstream_files, fast_retries, capsys
) -> None:
    pages = {kind: brief_page(upstream_files["v1"], kind) for kind in ("concepts", "mappings")}
    script = script_for(upstream_files)
    for kind, page in pages.items():
        script.answers[f"GET {REPO}v1/{kind}/"] = [Answer(200, json.dumps(page).encode(), JSON)]
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}", follow_head=False)
        assert sync(subscription).ok
        code, out = verify_exit(subscription.pk, capsys)
        assert code == 0, out
        items = len(pages["concepts"]) + len(pages["mappings"])
        assert f"v1: {items} items here, {items} there (pages): equal" in out
        # No checksum listing there (OCL v2): it was asked once, then the pages were read.
        asked = [path for method, path, _ in script.seen if "/v1/" in path and "export" not in path]
        assert asked[0] == f"{REPO}v1/checksums/"
        assert all("brief=true" in path and "checksums=true" in path for path in asked[1:])

        # Upstream, one concept is gone and another's smart checksum moved.
        gone, moved = pages["concepts"][0], pages["concepts"][1]
        moved["checksums"]["smart"] = "0" * 32
        changed_page = json.dumps(pages["concepts"][1:]).encode()
        script.answers[f"GET {REPO}v1/concepts/"] = [Answer(200, changed_page, JSON)]
        code, out = verify_exit(subscription.pk, capsys)

    assert code == 1
    assert f"missing there concept {gone['id']}: here version " in out
    assert f"changed       concept {moved['id']}: " in out and f"smart {'0' * 32}" in out
    assert "2 differences" in out and "NOT EQUAL: 1 of 1 versions differ" in out


@pytest.mark.django_db
def test_verify_cannot_compare_with_an_upstream_that_is_down(upstream_files, fast_retries, capsys) -> None:
    with scripted_server(script_for(upstream_files)) as base:
        subscription, _ = subscribe(f"{base}{REPO}", follow_head=False)
        assert sync(subscription).ok
    code, _ = verify_exit(subscription.pk, capsys)  # the server is gone
    assert code == 2


@pytest.mark.django_db
def test_a_version_whose_export_here_would_not_have_the_announced_sha256_is_rolled_back(
    upstream_files, fast_retries
) -> None:
    # The archive arrives intact (it hashes to what is announced) but is not this service's
    # rendering of the version (zipped by Python's zipfile): imported, it cannot give that sha256.
    archive = zipped(upstream_files["v1"])
    script = script_for(upstream_files)
    script.answers[f"GET {REPO}v1/export/"] = [
        Answer(303, b"", {"Location": "/files/v1.zip", **digest_header(archive)})
    ]
    script.answers["GET /files/v1.zip"] = [Answer(200, archive, ZIP)]
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}", follow_head=False)
        report = sync(subscription)

    assert f"the upstream's has {hashlib.sha256(archive).hexdigest()}: nothing was applied" in report.error
    assert not RepositoryVersion.objects.exists()
    assert Subscription.objects.get().versions_received == 0
