"""A mirror syncing from a real upstream instance of the service, in each profile.

The upstream is a LiveStack (gunicorn, an RQ worker, its own database and Redis) writing its
archives to a bucket of the suite's moto server; the mirror is this test's database, exporting
into another bucket of the same server. The upstream imports CIELTEST and releases a version;
the first sync must give the mirror a version whose export is byte-identical to the upstream's.
Then the upstream imports a changed copy (names edited, a concept retired, two new mappings, all
stamped later) and releases again; the next sync's HEAD diff must carry exactly the items changed
since the first (and the inclusive boundary instant), and HEAD and the new version must match the
upstream's. In the v1 profile the upstream also dies mid-sync, then answers 500: those runs leave
the mirror as it was, and the one after converges.
"""

from __future__ import annotations

import copy
import hashlib
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import requests

from mirror.client import Upstream
from mirror.models import Subscription, subscribe
from mirror.sync import Progress, SyncReport, sync
from ocl_export.produce import produce_archive
from repos.models import Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.items import ItemFilter
from repos.representation.shapes import repository_dict
from tests.conftest import FIXTURES
from tests.live.stack import LiveStack

pytestmark = [pytest.mark.live, pytest.mark.django_db]

CIELTEST = FIXTURES / "ocl-v1-CIELTEST-2015.zip"
REPO = "/orgs/CIELTEST/sources/CIELTEST/"
LATER = "2016-01-04T10:00:00Z"
EVERYTHING_QUERY = "?includeConcepts=true&includeMappings=true&includeRetired=true&limit=0"


def changed_copy(directory: Path) -> tuple[Path, set[str]]:
    """CIELTEST with three names edited, one concept retired and two new mappings, stamped later."""
    import zipfile

    data = json.loads(zipfile.ZipFile(CIELTEST).read("export.json"))
    concepts, mappings = data["concepts"], data["mappings"]
    changed = set()
    for index, concept in enumerate(concepts[10:14]):
        if index < 3:
            concept["display_name"] = concept["names"][0]["name"] = f"{concept['display_name']} (edited)"
        else:
            concept["retired"] = True
        concept["updated_on"] = LATER
        changed.add(concept["id"])
    for number in (1, 2):
        mapping = copy.deepcopy(mappings[number])
        mapping["id"] = f"new-mapping-{number}"
        mapping["url"] = f"{REPO}mappings/new-mapping-{number}/"
        mapping["map_type"] = "NARROWER-THAN"
        mapping["created_at"] = mapping["updated_at"] = LATER
        mappings.append(mapping)
        changed.add(mapping["id"])
    path = directory / "CIELTEST-changed.json"
    path.write_text(json.dumps(data))
    return path, changed


def release(stack: LiveStack, path: Path, imported_as: str, released_as: str) -> None:
    stack.import_file(path, "--version", imported_as)
    stack.manage("create_version", REPO, released_as, "--released")


def upstream_archive(stack: LiveStack, version: str, token: str, directory: Path) -> tuple[bytes, str]:
    """The upstream's export of ``version``, fetched as a client does; (bytes, "tgz" or "zip")."""
    download = Upstream(stack.url(REPO), token).fetch_export(version, directory)
    return download.path.read_bytes(), download.kind


def mirror_archive_sha256(version_id: str, fmt: str) -> str:
    """The mirror's own export of the version, written by the export code into its bucket."""
    version = RepositoryVersion.objects.get(repository__mnemonic="CIELTEST", version=version_id)
    return produce_archive(version, fmt, f"mirror-test/{version_id}.{fmt}").sha256


def mirror_head() -> dict[str, Any]:
    repo = Repository.objects.get(mnemonic="CIELTEST")
    everything = ItemFilter(include_concepts=True, include_mappings=True, include_retired=True)
    return orjson.loads(b"".join(stream_version(repo.head(), everything, top=repository_dict(repo))))


def upstream_head(stack: LiveStack) -> dict[str, Any]:
    return requests.get(stack.url(REPO + EVERYTHING_QUERY), timeout=30).json()


def ids(body: dict[str, Any]) -> set[str]:
    return {item["id"] for item in body["concepts"] + body["mappings"]}


def mirror_state() -> tuple:
    versions = sorted(RepositoryVersion.objects.values_list("version", flat=True))
    return versions, mirror_head()


def diff_requests(stack: LiveStack) -> list[dict[str, Any]]:
    """The upstream's access-log entries of updatedSince reads, oldest first."""
    entries = []
    for line in stack.log("web").splitlines():
        if line.startswith("{") and '"access"' in line:
            entry = json.loads(line)
            if entry.get("message") == "access" and "updatedSince" in entry.get("query", ""):
                entries.append(entry)
    return entries


@contextmanager
def upstream_table_away(stack: LiveStack, table: str) -> Iterator[None]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        try:
            yield
        finally:
            conn.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


class KillOnStep(Progress):
    """Kills the upstream's web process when the run reaches a step: a server dying mid-sync."""

    def __init__(self, stack: LiveStack, step: str) -> None:
        self.stack, self.at = stack, step

    def step(self, name: str) -> None:
        if name == self.at:
            self.stack.kill("web", signal.SIGKILL)


@pytest.fixture(params=["v1", "v2"])
def upstream(request, s3_server: str) -> Iterator[LiveStack]:
    env = {"OCL_COMPAT": request.param, "LOG_FORMAT": "json"}
    with LiveStack(f"upstream{request.param}", env=env, s3_endpoint=s3_server) as stack:
        yield stack


def test_a_mirror_follows_an_upstream_release_by_release(
    upstream: LiveStack, s3_bucket, live_retries, monkeypatch, tmp_path: Path
) -> None:
    profile = upstream.extra_env["OCL_COMPAT"]
    release(upstream, CIELTEST, "v2015-03-13", "v1")
    token = upstream.make_user("mirrorbot", admin_of="CIELTEST")
    monkeypatch.setenv("UPSTREAM_TOKEN", token)
    subscription, _ = subscribe(upstream.url(REPO), token_env="UPSTREAM_TOKEN")

    # First sync: the newest released version, whole, then HEAD's changes since it (none).
    first = sync(subscription)

    assert first.ok, first.error
    assert [step.version for step in first.steps] == ["v1", "HEAD"]
    archive, fmt = upstream_archive(upstream, "v1", token, tmp_path)
    assert fmt == ("zip" if profile == "v2" else "tgz")
    assert mirror_archive_sha256("v1", fmt) == hashlib.sha256(archive).hexdigest()
    assert mirror_head() == upstream_head(upstream)
    reached = Subscription.objects.get().reached

    # The upstream changes and releases again.
    changed_file, changed = changed_copy(tmp_path)
    release(upstream, changed_file, "v2015-changed", "v2")
    boundary = {item["id"] for item in mirror_head()["concepts"] + mirror_head()["mappings"]
                if item["updated_on"] == reached.isoformat().replace("+00:00", "Z")}  # fmt: skip

    if profile == "v1":
        before = mirror_state()
        died = sync(subscription, KillOnStep(upstream, "version v2"))
        assert "ConnectionError" in died.error and mirror_state() == before
        upstream.start_process("web")
        with upstream_table_away(upstream, "repos_repositoryversion"):  # every answer about it is a 500
            broken = sync(subscription)
        assert "HTTP 500" in broken.error and mirror_state() == before
        assert Subscription.objects.get().failures == 2

    later: SyncReport = sync(subscription)

    assert later.ok, later.error
    version_step, head_step = later.steps
    assert version_step.version == "v2" and head_step.version == "HEAD"
    assert head_step.since == reached.isoformat()
    assert head_step.items == len(changed | boundary)  # exactly what changed, and the boundary
    # The upstream's own access log: the diff went out once per run, and this run's is the one counted.
    diffs = diff_requests(upstream)
    assert len(diffs) == 2 and diffs[-1]["status"] == 200 and diffs[-1]["bytes"] == head_step.bytes
    assert mirror_head() == upstream_head(upstream)
    assert ids(mirror_head()) >= changed
    archive, fmt = upstream_archive(upstream, "v2", token, tmp_path)
    assert mirror_archive_sha256("v2", fmt) == hashlib.sha256(archive).hexdigest()
    mirrored = Subscription.objects.get()
    assert (mirrored.versions_received, mirrored.last_error) == (2, "")
    assert mirrored.reached == datetime.fromisoformat(LATER)
