"""A sync run against a scripted upstream: steps, retries within the run, the state it leaves.

The upstream's answers come from tests/mirror/scripted.py, its export from a real version of the
CIELTEST fixture; the mirror is this test's database. The end-to-end runs against real upstream
instances are in test_live_mirror.py.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from mirror.models import Subscription, subscribe
from mirror.sync import sync
from repos.models import Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.items import EVERYTHING
from tests.mirror.ocl_v2 import JSON, REPO, ZIP, script_for, zipped
from tests.mirror.scripted import Answer, scripted_server


def mirrored(version: str = "v1") -> bytes:
    return b"".join(stream_version(RepositoryVersion.objects.get(version=version), EVERYTHING))


@pytest.mark.django_db
def test_a_first_sync_imports_the_newest_released_version_then_heads_changes(upstream_files, fast_retries) -> None:
    script = script_for(upstream_files)
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        report = sync(subscription)

    assert report.ok, report.error
    # An upstream whose diff lists no removals (OCL v2) has HEAD's membership read on the first run.
    assert [(step.version, step.items, step.applied, step.removed) for step in report.steps] == [
        ("v1", 200, 200, 0),
        ("HEAD", 0, 0, 0),
        ("HEAD members", 0, 0, 0),
    ]
    assert mirrored() == upstream_files["v1"]
    subscription.refresh_from_db()
    assert (subscription.runs, subscription.failures, subscription.versions_received) == (1, 0, 1)
    assert (subscription.items_received, subscription.items_applied) == (200, 200)
    assert subscription.bytes_received == sum(step.bytes for step in report.steps)
    assert subscription.last_success is not None and subscription.last_error == ""
    assert subscription.running_since is None
    # HEAD's diff was asked from the version's newest item; nothing newer came, so HEAD is there.
    newest = RepositoryVersion.objects.get(version="v1").last_updated
    assert report.steps[1].since == newest.isoformat() and subscription.reached == newest


@pytest.mark.django_db
def test_an_upstream_answering_500_is_tried_again_within_the_run(upstream_files, fast_retries) -> None:
    boom = Answer(500, b'{"detail": "boom"}', JSON)
    script = script_for(upstream_files, [boom, boom, Answer(200, zipped(upstream_files["v1"]), ZIP)])
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        report = sync(subscription)

    assert report.ok, report.error
    assert report.steps[0].attempts == 3
    assert mirrored() == upstream_files["v1"]


@pytest.mark.django_db
def test_a_rate_limited_upstream_is_waited_for_as_long_as_its_retry_after_says(upstream_files, fast_retries) -> None:
    limited = Answer(429, b'{"detail": "Request was throttled."}', {"Retry-After": "7", **JSON})
    script = script_for(upstream_files, [limited, Answer(200, zipped(upstream_files["v1"]), ZIP)])
    pauses: list[float] = []
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        report = sync(subscription, sleep=pauses.append)

    assert report.ok, report.error
    assert pauses == [7.0]  # MIRROR_BACKOFF is 0 here: the pause is the upstream's
    assert mirrored() == upstream_files["v1"]


@pytest.mark.django_db
def test_a_run_that_gives_up_applies_nothing_keeps_the_error_and_the_next_run_converges(
    upstream_files, fast_retries
) -> None:
    damaged = zipped(upstream_files["v1"])
    damaged = damaged[:100] + b"\0" * 50 + damaged[150:]
    script = script_for(
        upstream_files, [Answer(200, damaged, ZIP)] * 3 + [Answer(200, zipped(upstream_files["v1"]), ZIP)]
    )
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        failed = sync(subscription)
        assert "damaged" in failed.error and "gave up after 3 attempts" in failed.error
        assert not Repository.objects.filter(mnemonic="CIELTEST").exists()
        assert (subscription.failures, subscription.runs, subscription.items_received) == (1, 1, 0)
        assert "damaged" in subscription.last_error

        again = sync(subscription)

    assert again.ok, again.error
    assert mirrored() == upstream_files["v1"]
    assert (subscription.failures, subscription.runs, subscription.last_error) == (1, 2, "")


@pytest.mark.django_db
def test_the_token_is_read_from_the_named_variable_and_never_kept(upstream_files, fast_retries, monkeypatch) -> None:
    monkeypatch.setenv("CIELTEST_TOKEN", "very-secret-token")
    script = script_for(upstream_files)
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}", token_env="CIELTEST_TOKEN")
        assert sync(subscription).ok

    assert {headers.get("Authorization") for _, _, headers in script.seen} == {"Token very-secret-token"}
    out = io.StringIO()
    call_command("subscriptions", stdout=out)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM mirror_subscription")
        stored = repr(cursor.fetchall())
    assert "very-secret-token" not in out.getvalue() + stored
    assert "env:CIELTEST_TOKEN" in out.getvalue()


@pytest.mark.django_db
def test_a_missing_token_variable_fails_the_run_with_its_name(upstream_files, fast_retries, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    subscription, _ = subscribe(f"http://127.0.0.1:9{REPO}", token_env="NOT_SET_TOKEN")
    report = sync(subscription)
    assert "NOT_SET_TOKEN" in report.error
    assert Subscription.objects.get().failures == 1


@pytest.mark.django_db
def test_a_run_skips_a_subscription_another_run_holds(upstream_files) -> None:
    subscription, _ = subscribe(f"http://127.0.0.1:9{REPO}")
    assert subscription.claim(stale_after=3600)
    assert sync(Subscription.objects.get()).skipped


@pytest.mark.django_db
def test_later_runs_take_only_versions_released_after_the_newest_held(upstream_files, fast_retries) -> None:
    listing = b'[{"id": "v2", "released": true}, {"id": "v1", "released": true}, {"id": "v0", "released": true}]'
    script = script_for(upstream_files)
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}", follow_head=False)
        assert sync(subscription).ok
        script.answers[f"GET {REPO}versions/"] = [Answer(200, listing, JSON)]

        later = sync(subscription)

    asked = [path for method, path, _ in script.seen if "/export/" in path]
    # never v0, older than v1; v2 as a delta from v1 first, whole when the upstream has none (404)
    assert asked == [f"{REPO}v1/export/", f"{REPO}v2/export/delta/?from=v1", f"{REPO}v2/export/"]
    assert "404" in later.error
