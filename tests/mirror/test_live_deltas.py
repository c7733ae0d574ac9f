"""Releases travel as deltas to a mirror and to a mirror of that mirror, each proven equal.

The upstream and the mirror are LiveStacks (gunicorn, an RQ worker, their own database and Redis,
buckets on the suite's moto server); the mirror of the mirror is this test's database. Each
mirrors the CIELTEST source and a collection of its concepts. The first sync takes v1 whole; the
upstream then releases v2 of both (names edited, a concept retired, two mappings added; the
collection down from six references to four), and the next sync of each mirror takes v2 as a
delta from v1: its step says so, its version's export has the upstream's sha256, and the
upstream's access log shows the delta read and no export of v2 read. ``manage.py verify`` finds
each mirror equal to its upstream (exit 0) until a row is changed behind the mirror's back
(exit 1, naming it).

Then the faults, against the upstream directly: its web process SIGKILLed as the delta step
starts (nothing applied; the next run takes the delta), and a delta whose stored bytes were
tampered with (its sha256 is not the one announced: refused after the run's attempts, nothing of
it applied, and the version taken whole instead, still proven by its sha256).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command

from mirror.client import Upstream
from mirror.models import Subscription, subscribe
from mirror.sync import sync
from ocl_export.produce import archive_digest
from repos.models import RepositoryVersion
from repos.representation.rendering import render_all_pending
from tests.live.stack import LiveStack, wait_until
from tests.mirror.test_live_mirror import KillOnStep

# The removals' live test holds the same cast: its files and repositories.
from tests.mirror.test_live_removals import CIELTEST, COLLECTION, SOURCE, TOKEN_ENV, collection_file

pytestmark = [pytest.mark.live, pytest.mark.django_db]

LATER = "2016-01-04T10:00:00Z"


def changed_source(directory: Path, name: str, edits: int = 3) -> Path:
    """CIELTEST with names edited, one concept retired and two new mappings, stamped later."""
    data = json.loads(zipfile.ZipFile(CIELTEST).read("export.json"))
    concepts, mappings = data["concepts"], data["mappings"]
    for index, concept in enumerate(concepts[10 : 11 + edits]):
        if index < edits:
            concept["display_name"] = concept["names"][0]["name"] = f"{concept['display_name']} ({name})"
        else:
            concept["retired"] = True
        concept["updated_on"] = LATER
    for number in (1, 2):
        mapping = copy.deepcopy(mappings[number])
        mapping["id"] = f"{name}-mapping-{number}"
        mapping["url"] = f"{SOURCE}mappings/{mapping['id']}/"
        mapping["created_at"] = mapping["updated_at"] = LATER
        mappings.append(mapping)
    path = directory / f"CIELTEST-{name}.json"
    path.write_text(json.dumps(data))
    return path


def release_source(stack: LiveStack, path: Path, imported_as: str, released_as: str) -> None:
    stack.import_file(path, "--version", imported_as)
    stack.manage("create_version", SOURCE, released_as, "--released")


def upstream_sha256(stack: LiveStack, path: str, version: str, token: str, directory: Path) -> tuple[str, str]:
    """(sha256, format) of the stack's export of ``version``, downloaded as a client does."""
    download = Upstream(stack.url(path), token).fetch_export(version, directory)
    return hashlib.sha256(download.path.read_bytes()).hexdigest(), download.kind


def local_sha256(mnemonic: str, version: str, fmt: str) -> str:
    found = RepositoryVersion.objects.get(repository__mnemonic=mnemonic, version=version)
    return archive_digest(found, fmt).sha256


def version_steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["version"]: step for step in report["steps"] if step["version"] != "HEAD"}


def stack_reports(stack: LiveStack) -> dict[str, dict[str, Any]]:
    """The stack's subscriptions' last reports, by subscription URL path."""
    out = stack.shell(
        "import json\nfrom mirror.models import Subscription\n"
        "print(json.dumps({s.url: s.last_report for s in Subscription.objects.all()}))"
    )
    reports = json.loads(out.strip().splitlines()[-1])
    return {url[url.index("/orgs/") :]: report for url, report in reports.items()}


def access_paths(stack: LiveStack) -> list[str]:
    """Path and query of every request in the stack's JSON access log."""
    paths = []
    for line in stack.log("web").splitlines():
        if line.startswith("{") and '"access"' in line:
            entry = json.loads(line)
            if entry.get("message") == "access":
                paths.append(entry.get("path", "") + ("?" + entry["query"] if entry.get("query") else ""))
    return paths


def verify_exit(subscription: Subscription, capsys, *options: str) -> tuple[int, str]:
    try:
        call_command("verify", str(subscription.pk), *options)
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    return code, capsys.readouterr().out


def change_behind_the_back(mnemonic: str) -> str:
    """Edit one concept row of the source directly in the database (its first name), then let the
    service re-render it as it does any row whose rendering is missing; the concept's id."""
    from repos.models import ConceptVersion

    row = ConceptVersion.objects.filter(source__mnemonic=mnemonic, retired=False).order_by("id").first()
    names = json.loads(row.names)
    names[0]["name"] += " (edited here)"
    ConceptVersion.objects.filter(pk=row.pk).update(
        names=json.dumps(names), json_head=None, json_tail=None, json_size=None
    )
    render_all_pending()
    return row.mnemonic


@pytest.fixture(params=["v1", "v2"])
def stacks(request, s3_server: str, tmp_path: Path) -> Iterator[tuple[LiveStack, LiveStack, str, str]]:
    """(upstream, mirror, their tokens); the mirror subscribes to the source and the collection."""
    env = {"OCL_COMPAT": request.param, "LOG_FORMAT": "json"}
    with LiveStack(f"dup{request.param}", env=env, s3_endpoint=s3_server) as upstream:
        release_source(upstream, CIELTEST, "v2015-03-13", "v1")
        upstream.import_file(collection_file(tmp_path, "v1", 6, "2015-03-14T00:00:00", True))
        token = upstream.make_user("mirrorbot", admin_of="CIELTEST")
        with LiveStack(f"dmid{request.param}", env={**env, TOKEN_ENV: token}, s3_endpoint=s3_server) as mirror:
            for path in (SOURCE, COLLECTION):
                mirror.manage("subscribe", upstream.url(path), "--token-env", TOKEN_ENV, "--no-schedule")
            yield upstream, mirror, token, mirror.make_user("mirrorbot", admin_of="CIELTEST")


def test_a_release_reaches_a_mirror_and_its_mirror_as_a_delta_proven_by_sha256(
    stacks, s3_bucket, live_retries, monkeypatch, tmp_path: Path, capsys
) -> None:
    upstream, mirror, upstream_token, mirror_token = stacks
    monkeypatch.setenv(TOKEN_ENV, mirror_token)
    mirror.manage("sync", "--all", "--quiet")
    local = [subscribe(mirror.url(path), token_env=TOKEN_ENV)[0] for path in (SOURCE, COLLECTION)]
    for subscription in local:
        assert sync(subscription).ok
    # The first sync of each takes v1 whole (nothing here to start a delta from).
    assert {p: version_steps(r)["v1"]["route"] for p, r in stack_reports(mirror).items()} == {
        SOURCE: "whole",
        COLLECTION: "whole",
    }

    release_source(upstream, changed_source(tmp_path, "v2"), "v2015-changed", "v2")
    upstream.import_file(collection_file(tmp_path, "v2", 4, "2015-03-20T00:00:00", True))
    exports_before = sum("/v2/export/" in path and "delta" not in path for path in access_paths(upstream))

    out = mirror.manage("sync", "--all", "--quiet").stdout
    assert "failed" not in out, out
    # Wait for the mirror's web processes to list v2 (read-cache notification after the commit).
    wait_until(
        lambda: all(sync(s).ok and RepositoryVersion.objects.filter(repository__mnemonic=m, version="v2").exists()
                    for s, m in zip(local, ("CIELTEST", "Starter"), strict=True)),
        timeout=30, step=0.5, what="v2 at the mirror's mirror",
    )  # fmt: skip

    for path, mnemonic in ((SOURCE, "CIELTEST"), (COLLECTION, "Starter")):
        expected, fmt = upstream_sha256(upstream, path, "v2", upstream_token, tmp_path)
        step = version_steps(stack_reports(mirror)[path])["v2"]
        assert (step["route"], step["checked"], step["refused"]) == ("delta", expected, None)
        local_step = version_steps(Subscription.objects.get(url=mirror.url(path)).last_report)["v2"]
        assert (local_step["route"], local_step["checked"]) == ("delta", expected)
        assert local_sha256(mnemonic, "v2", fmt) == expected
        mirrored, _ = upstream_sha256(mirror, path, "v2", mirror_token, tmp_path)
        assert mirrored == expected
    # The upstream sent deltas and, to the mirror, no export of v2 (the test's own reads aside).
    paths = access_paths(upstream)
    assert any(f"{SOURCE}v2/export/delta/" in path and "from=v1" in path for path in paths)
    assert any(f"{COLLECTION}v2/export/delta/" in path for path in paths)
    assert sum("/v2/export/" in path and "delta" not in path for path in paths) == exports_before + 2

    # verify: both mirrors equal their upstreams, until a row changes behind the back of one.
    for pk in json.loads(
        mirror.shell(
            "from mirror.models import Subscription\nprint(list(Subscription.objects.values_list('pk', flat=True)))"
        )
        .strip()
        .splitlines()[-1]
    ):
        verified = mirror.manage("verify", str(pk), check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    code, out = verify_exit(local[0], capsys)
    assert code == 0, out
    assert "v2: " in out and "(version checksums): equal" in out  # as wholes: the versions' checksums agree
    code, out = verify_exit(local[0], capsys, "--items")
    assert code == 0, out
    assert "v2: " in out and "(listing): equal" in out  # item by item, as asked
    changed = change_behind_the_back("CIELTEST")
    code, out = verify_exit(local[0], capsys)
    assert code == 1, out
    assert "(listing): 1 difference" in out  # the version's checksums differ: compared item by item
    assert f"changed       concept {changed}:" in out
    assert "NOT EQUAL" in out


@pytest.fixture
def upstream(s3_server: str) -> Iterator[LiveStack]:
    with LiveStack("dfault", env={"OCL_COMPAT": "v1", "LOG_FORMAT": "json"}, s3_endpoint=s3_server) as stack:
        yield stack


def tamper_delta(stack: LiveStack, version: str, base: str, token: str, directory: Path) -> None:
    """Make the upstream's delta from ``base`` to ``version``, then rewrite its stored archive:
    still a valid tgz, one name changed, so only its sha256 tells."""
    Upstream(stack.url(SOURCE), token).fetch_delta(version, base, directory)
    with psycopg.connect(stack.database_url) as conn:
        key = conn.execute(
            "SELECT e.key FROM ocl_export_export e JOIN repos_repositoryversion v ON v.id = e.version_id "
            "JOIN repos_repositoryversion b ON b.id = e.base_id WHERE v.version = %s AND b.version = %s",
            [version, base],
        ).fetchone()[0]
    key = f"exports/{key}"  # AWS_LOCATION's default prefix
    client = stack.s3_client()
    original = client.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(original), mode="r:gz") as archive:
        member = archive.getmember("export.json")
        body = archive.extractfile(member).read().replace(b"(v3)", b"(v3!)", 1)  # type: ignore[union-attr]
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as raw, tarfile.open(fileobj=raw, mode="w") as archive:
        member.size = len(body)
        archive.addfile(member, io.BytesIO(body))
    assert out.getvalue() != original
    client.put_object(Bucket=stack.bucket, Key=key, Body=out.getvalue())


def test_a_delta_cut_off_or_damaged_leaves_nothing_and_the_next_run_converges(
    upstream: LiveStack, s3_bucket, live_retries, monkeypatch, tmp_path: Path
) -> None:
    release_source(upstream, CIELTEST, "v2015-03-13", "v1")
    token = upstream.make_user("mirrorbot", admin_of="CIELTEST")
    monkeypatch.setenv(TOKEN_ENV, token)
    subscription, _ = subscribe(upstream.url(SOURCE), token_env=TOKEN_ENV, follow_head=False)
    assert sync(subscription).ok
    release_source(upstream, changed_source(tmp_path, "v2"), "v2015-changed", "v2")

    # The upstream dies as the delta step starts: the run fails, nothing of v2 is here.
    died = sync(subscription, KillOnStep(upstream, "version v2"))
    assert "ConnectionError" in died.error
    assert not RepositoryVersion.objects.filter(version="v2").exists()
    upstream.start_process("web")
    converged = sync(subscription)
    assert converged.ok, converged.error
    (step,) = converged.steps
    expected, fmt = upstream_sha256(upstream, SOURCE, "v2", token, tmp_path)
    assert (step.version, step.route, step.checked) == ("v2", "delta", expected)
    assert local_sha256("CIELTEST", "v2", fmt) == expected

    # A delta whose stored bytes were changed: refused on its sha256, v3 taken whole and proven.
    release_source(upstream, changed_source(tmp_path, "v3"), "v2015-changed-again", "v3")
    tamper_delta(upstream, "v3", "v2", token, tmp_path)
    damaged = sync(subscription)
    assert damaged.ok, damaged.error
    (step,) = damaged.steps
    expected, fmt = upstream_sha256(upstream, SOURCE, "v3", token, tmp_path)
    assert (step.version, step.route, step.checked) == ("v3", "whole", expected)
    assert "damaged delta refused" in step.refused and "the upstream announced" in step.refused
    assert step.attempts == 1  # the whole archive's; the delta had its two
    assert local_sha256("CIELTEST", "v3", fmt) == expected
