"""One run of a subscription: new released versions first, then HEAD's changes, each step whole.

A step is "download a file, check it, import it": the import is one transaction, so a step either
lands whole or leaves the mirror as it was, and a run cut off half-way resumes at the step that
failed next time. Downloads that fail for a reason worth another attempt (upstream down, slow,
5xx, a damaged archive) are tried again within the run, with a doubling pause in between.

Released versions come before HEAD's diff: importing a version also writes its rows into HEAD, so
the diff, asked from the mark HEAD reached before, then brings HEAD to the upstream's state. The
first run takes only the newest released version; later runs take every version released after
the newest one the mirror holds, oldest first, each as a delta from the one before when the
upstream offers one (``releases.py``: the route, the fallbacks, and the sha256 check every
version passes before its transaction commits).

What left the upstream's HEAD reaches the mirror's the same way: this service's diff lists it
(``removed``, asked from the same mark), and the import takes it out. An upstream whose diff has
no such list (OCL v2) is reconciled instead, at most every ``reconcile_hours``: a last step reads
the ids of every item its HEAD holds and the import takes out the rest.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from repos.importers import ImportFileError, ImportSummary, import_file
from repos.models import HEAD, RepositoryVersion

from .client import Download, Upstream, UpstreamError, UpstreamUnavailable
from .models import Subscription, SubscriptionError
from .releases import take_release

logger = logging.getLogger(__name__)

T = TypeVar("T")
MEMBERS = "HEAD members"  # the step that reconciles HEAD's membership


@dataclass
class Step:
    """One applied step: a released version, or HEAD's changes."""

    version: str  # the version id, or "HEAD" for a diff
    bytes: int
    items: int  # items the file held
    applied: int  # rows the import wrote (items that changed here)
    attempts: int
    seconds: float
    since: str | None = None  # the updatedSince of a diff
    removed: int = 0  # items that left HEAD
    route: str | None = None  # a version's: "delta" or "whole"
    checked: str | None = None  # the sha256 the version's export here was proven to have
    refused: str | None = None  # why a delta was not taken, when one was tried
    check_seconds: float = 0.0  # of ``seconds``, the sha256 proof's
    fetch_seconds: float = 0.0  # of ``seconds``, the download's (with its retries and waits)
    phases: dict[str, float] = field(default_factory=dict)  # of ``seconds``, the import's own phases


@dataclass
class SyncReport:
    subscription: int
    steps: list[Step] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False  # another run held the subscription
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.skipped:
            return f"subscription {self.subscription}: another run is under way, skipped"
        parts = [
            f"{step.version}{f' by {step.route}' if step.route else ''}: {step.items} items ({step.applied} applied"
            + (f", {step.removed} removed" if step.removed else "")
            + f"), {step.bytes:,} bytes in {step.seconds:.1f} s"
            for step in self.steps
        ]
        outcome = f"failed: {self.error}" if self.error else "up to date"
        return f"subscription {self.subscription}: {'; '.join(parts) or 'nothing new'}; {outcome}"


class Progress:
    """What a run reports as it goes (the sync command draws a bar from it); silent by default."""

    def step(self, name: str) -> None:
        pass

    def bytes(self, count: int) -> None:
        pass


def sync(
    subscription: Subscription, progress: Progress | None = None, sleep: Callable[[float], None] = time.sleep
) -> SyncReport:
    """Run ``subscription`` once; the outcome is on the subscription and in the returned report."""
    progress = progress or Progress()
    report = SyncReport(subscription=subscription.pk)
    if not subscription.claim(stale_after=settings.EXPORT_JOB_TIMEOUT):
        report.skipped = True
        return report
    started = time.monotonic()
    try:
        upstream = Upstream(
            subscription.url,
            subscription.token(),
            timeout=settings.MIRROR_TIMEOUT,
            export_wait=settings.MIRROR_EXPORT_WAIT,
            sleep=sleep,
            on_bytes=progress.bytes,
        )
        try:
            _run(subscription, upstream, report, progress, sleep)
        finally:
            upstream.close()
    except (UpstreamError, ImportFileError, SubscriptionError) as exc:
        report.error = str(exc)
        logger.warning("%s failed: %s", subscription, exc)
    except Exception as exc:
        report.error = f"unexpected {type(exc).__name__}: {exc}"  # recorded, then up to RQ with its traceback
        raise
    finally:
        report.seconds = time.monotonic() - started
        subscription.finish(report.as_dict(), report.error)
    return report


def _run(
    subscription: Subscription,
    upstream: Upstream,
    report: SyncReport,
    progress: Progress,
    sleep: Callable[[float], None],
) -> None:
    head_mark = subscription.reached
    newest_version: datetime | None = None
    if subscription.follow_released:
        base, versions = _versions_to_fetch(subscription, upstream, sleep)
        for version in versions:
            progress.step(f"version {version}")
            step, summary = _release_step(upstream, version, base, sleep)
            report.steps.append(step)
            base = version
            newest_version = summary.newest or newest_version
            # A subscription that follows HEAD moves its mark with HEAD's diffs only (see the module).
            subscription.record_step(
                step.items, step.applied, step.bytes, True, None if subscription.follow_head else summary.newest
            )
    if subscription.follow_head:
        since = head_mark or newest_version
        progress.step("HEAD changes")
        step, summary = _step(HEAD, lambda directory: upstream.fetch_changes(since, directory), True, sleep)
        step.since = since.isoformat() if since else None
        report.steps.append(step)
        # An empty diff still tells that HEAD was current at ``since``.
        subscription.record_step(step.items, step.applied, step.bytes, False, summary.newest or since)
        now = timezone.now()
        if not summary.lists_removed and subscription.reconcile_due(now):
            progress.step("HEAD members")
            step, summary = _step(MEMBERS, upstream.fetch_members, True, sleep)
            report.steps.append(step)
            subscription.record_step(0, step.applied, step.bytes, False, None)
            subscription.record_reconciled(now)


def _versions_to_fetch(
    subscription: Subscription, upstream: Upstream, sleep: Callable[[float], None]
) -> tuple[str | None, list[str]]:
    """(the newest released version held here, the released versions to take, oldest first)."""
    released = _retrying(upstream.released_versions, sleep)[0]
    held = local_versions(subscription)
    if not held.intersection(released):
        return None, released[-1:]  # a first sync starts from the newest released version
    # Only versions released after the newest one held: older ones were skipped on purpose.
    newest_held = max(index for index, version in enumerate(released) if version in held)
    return released[newest_held], [version for version in released[newest_held + 1 :] if version not in held]


def local_versions(subscription: Subscription) -> set[str]:
    """Ids of the versions (not HEAD) the mirror holds of the subscription's repository."""
    return set(held_versions(subscription).exclude(version=HEAD).values_list("version", flat=True))


def held_versions(subscription: Subscription) -> QuerySet[RepositoryVersion]:
    """The versions (HEAD too) the mirror holds of the subscription's repository."""
    owner_kind, owner, repo_type, mnemonic = subscription.repository_parts
    owner_filter = (
        {"repository__owner_org__mnemonic": owner}
        if owner_kind == "orgs"
        else {"repository__owner_user__username": owner}
    )
    return RepositoryVersion.objects.filter(
        repository__repo_type=repo_type, repository__mnemonic=mnemonic, **owner_filter
    )


def _step(
    version: str, fetch: Callable[[Path], Download], partial: bool, sleep: Callable[[float], None]
) -> tuple[Step, ImportSummary]:
    """Download (with retries) and import one file; the import is one transaction."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mirror-") as directory:
        download, attempts = _retrying(lambda: fetch(Path(directory)), sleep)
        # A plain "Source" file (no version of its own) takes the upstream's version id.
        summary = import_file(download.path, partial=partial, version=None if partial else version)
    applied = summary.new_concepts + summary.new_mappings
    step = Step(version, download.size, summary.items, applied, attempts, time.monotonic() - started)
    step.removed = summary.removed
    return step, summary


def _release_step(
    upstream: Upstream, version: str, base: str | None, sleep: Callable[[float], None]
) -> tuple[Step, ImportSummary]:
    """One released version, by delta or whole (``releases.take_release``), checked."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mirror-") as directory:
        retrying = lambda action: _retrying(action, sleep)  # noqa: E731
        taken = take_release(upstream, version, base, Path(directory), retrying, settings.MIRROR_DELTAS)
    summary = taken.summary
    applied = summary.new_concepts + summary.new_mappings
    step = Step(version, taken.download.size, summary.items, applied, taken.attempts, time.monotonic() - started)
    step.route, step.checked, step.refused = taken.route, taken.checked, taken.refused
    step.check_seconds, step.fetch_seconds = taken.check_seconds, taken.fetch_seconds
    step.phases = {name: round(seconds, 3) for name, seconds in summary.phases.items()}
    return step, summary


def _retrying(action: Callable[[], T], sleep: Callable[[float], None]) -> tuple[T, int]:
    """``action()``, tried again after a doubling pause while it fails for a temporary reason."""
    attempts = settings.MIRROR_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return action(), attempt
        except UpstreamUnavailable as exc:
            if attempt == attempts:  # the same kind of failure (a damaged download stays one)
                raise type(exc)(f"{exc} (gave up after {attempts} attempts)", exc.retry_after) from exc
            # the upstream's Retry-After (a rate limit, a restart) when it asks for longer
            pause = max(settings.MIRROR_BACKOFF * 2 ** (attempt - 1), exc.retry_after or 0)
            logger.info("attempt %d of %d failed (%s); next in %s s", attempt, attempts, exc, pause)
            sleep(pause)
    raise AssertionError("unreachable")
