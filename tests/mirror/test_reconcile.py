"""What left the upstream's HEAD leaves the mirror's: from the diff's removed list, or by reconciling.

This service's diff lists what left HEAD since the mark (``includeRemoved=true``): the HEAD step
applies it, and no listing is read. OCL v2's diff has no such list, so at most every
``reconcile_hours`` a last step reads the ids of every item its HEAD holds (paged ``brief``
listings) and the import takes out what the listing does not name. The upstream is the scripted
OCL v2 of test_sync; the mirror is this test's database.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from mirror import client
from mirror.models import Subscription, subscribe
from mirror.sync import sync
from repos.models import HeadRemoval, RepositoryVersion
from tests.mirror.ocl_v2 import JSON, REPO, ZIP, script_for, zipped
from tests.mirror.scripted import Answer, scripted_server

MEMBER_STEP = "HEAD members"


def head_ids(kind: str) -> set[str]:
    head = RepositoryVersion.objects.get(repository__mnemonic="CIELTEST", version="HEAD")
    return set(getattr(head, kind).values_list("mnemonic", flat=True))


def without_first(listing: bytes) -> tuple[bytes, str]:
    items = json.loads(listing)
    return json.dumps(items[1:]).encode(), items[0]["id"]


@pytest.mark.django_db
def test_items_an_ocl_v2_upstream_no_longer_lists_leave_the_mirrors_head(upstream_files, fast_retries) -> None:
    script = script_for(upstream_files)
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        assert sync(subscription).ok
        assert Subscription.objects.get().reconciled_on is not None
        # Upstream, an admin hard-deletes a concept and a mapping: gone from the listings only.
        concepts, concept = without_first(upstream_files["concepts"])
        mappings, mapping = without_first(upstream_files["mappings"])
        script.answers[f"GET {REPO}concepts/"] = [Answer(200, concepts, JSON)]
        script.answers[f"GET {REPO}mappings/"] = [Answer(200, mappings, JSON)]
        Subscription.objects.update(reconciled_on=Subscription.objects.get().reconciled_on - timedelta(hours=25))

        report = sync(Subscription.objects.get())

    assert report.ok, report.error
    assert [(step.version, step.removed) for step in report.steps] == [("HEAD", 0), (MEMBER_STEP, 2)]
    assert concept not in head_ids("concepts") and len(head_ids("concepts")) == 99
    assert mapping not in head_ids("mappings") and len(head_ids("mappings")) == 99
    assert set(HeadRemoval.objects.values_list("mnemonic", flat=True)) == {concept, mapping}
    # The released version is immutable: it keeps both.
    assert RepositoryVersion.objects.get(version="v1").concepts.count() == 100
    asked = [path for _, path, _ in script.seen if "/concepts/?" in path]
    assert "brief=true" in asked[-1] and "includeRetired=true" in asked[-1]


@pytest.mark.django_db
def test_the_listing_is_read_at_most_every_reconcile_hours_and_never_with_zero(upstream_files, fast_retries) -> None:
    script = script_for(upstream_files)
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}", reconcile_hours=6)
        assert [step.version for step in sync(subscription).steps][-1] == MEMBER_STEP
        assert [step.version for step in sync(Subscription.objects.get()).steps] == ["HEAD"]
        subscription, _ = subscribe(f"{base}{REPO}", reconcile_hours=0)
        Subscription.objects.update(reconciled_on=None)
        assert [step.version for step in sync(Subscription.objects.get()).steps] == ["HEAD"]
    assert sum(1 for _, path, _ in script.seen if "/concepts/?" in path) == 1


@pytest.mark.django_db
def test_a_listing_that_changes_while_it_is_read_is_refused_and_nothing_leaves(
    upstream_files, fast_retries, monkeypatch
) -> None:
    monkeypatch.setattr(client, "MEMBERS_PAGE", 60)  # two pages of the 100 concepts
    items = json.loads(upstream_files["concepts"])
    pages = [
        Answer(200, json.dumps(items[:60]).encode(), {**JSON, "num_found": "100"}),
        Answer(200, json.dumps(items[61:]).encode(), {**JSON, "num_found": "99"}),  # one deleted meanwhile
    ]
    script = script_for(upstream_files)
    script.answers[f"GET {REPO}concepts/"] = pages * 3
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        report = sync(subscription)

    assert "the listing changed while it was read" in report.error
    assert len(head_ids("concepts")) == 100 and not HeadRemoval.objects.exists()
    assert Subscription.objects.get().reconciled_on is None  # tried again next run


@pytest.mark.django_db
def test_an_upstream_that_lists_removals_needs_no_listing(upstream_files, fast_retries) -> None:
    script = script_for(upstream_files)
    with scripted_server(script) as base:
        subscription, _ = subscribe(f"{base}{REPO}")
        assert sync(subscription).ok
        gone = json.loads(upstream_files["concepts"])[0]
        diff = json.loads(upstream_files["diff"])
        diff["removed"] = [
            {"type": "Concept", "id": gone["id"], "url": gone["url"], "removed_on": "2026-12-06T00:00:00Z"}
        ]
        script.answers[f"GET {REPO}?"] = [Answer(200, zipped(json.dumps(diff).encode()), ZIP)]
        Subscription.objects.update(reconciled_on=None)
        seen = len(script.seen)

        report = sync(Subscription.objects.get())

    assert report.ok, report.error
    assert [(step.version, step.removed) for step in report.steps] == [("HEAD", 1)]
    assert gone["id"] not in head_ids("concepts")
    asked = [path for _, path, _ in script.seen[seen:]]
    assert not any("/concepts/" in path for path in asked)
    assert "includeRemoved=true" in next(path for path in asked if "updatedSince" in path)
