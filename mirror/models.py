"""A subscription to one upstream repository, and the state its syncs leave on it.

The credentials are never stored: a subscription names where to read them at run time (an
environment variable or a file), so the database, the API view and the command output can show
where a token comes from without ever holding it.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from django.db import models
from django.db.models import F
from django.utils import timezone

# https://host/orgs/X/sources/Y/ (or users/..., collections/...): the repository's own URL.
REPOSITORY_URL = re.compile(r"^https?://[^/]+(?:/[^/]+)*?/(orgs|users)/[^/]+/(sources|collections)/[^/]+/$")
REPOSITORY_PATH = re.compile(r"/(orgs|users)/([^/]+)/(sources|collections)/([^/]+)/$")
DEFAULT_INTERVAL = 3600
# Hours between reconciliations of HEAD's membership with an upstream that keeps no removals.
DEFAULT_RECONCILE_HOURS = 24


class SubscriptionError(ValueError):
    """A subscription that cannot be made as asked (bad URL, both credential sources...)."""


def normalize_url(url: str) -> str:
    url = url.strip()
    if not url.endswith("/"):
        url += "/"
    if not REPOSITORY_URL.match(url):
        raise SubscriptionError(
            f"{url!r} is not a repository URL like https://host/orgs/CIEL/sources/CIEL/ "
            "(owner type orgs or users, repository type sources or collections)"
        )
    return url


class Subscription(models.Model):
    url = models.CharField(max_length=500, unique=True)
    # Where the API token is read at each run: one of these, or neither (anonymous).
    token_env = models.CharField(max_length=255, blank=True, default="")
    token_file = models.CharField(max_length=1000, blank=True, default="")
    follow_released = models.BooleanField(default=True)
    follow_head = models.BooleanField(default=True)
    interval = models.PositiveIntegerField(default=DEFAULT_INTERVAL)  # seconds between scheduled runs
    # An upstream that lists no removals (OCL v2): HEAD's membership is checked against its
    # listings at most this often (0: never), so what it removed leaves the mirror's HEAD too.
    reconcile_hours = models.PositiveIntegerField(default=DEFAULT_RECONCILE_HOURS)
    created_on = models.DateTimeField(default=timezone.now)

    # State, written by the syncs only.
    running_since = models.DateTimeField(null=True, blank=True)
    last_run = models.DateTimeField(null=True, blank=True)
    last_success = models.DateTimeField(null=True, blank=True)
    reached = models.DateTimeField(null=True, blank=True)  # the upstream lastUpdated the mirror holds
    last_error = models.TextField(blank=True, default="")
    last_error_on = models.DateTimeField(null=True, blank=True)
    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    versions_received = models.PositiveIntegerField(default=0)
    items_received = models.BigIntegerField(default=0)
    items_applied = models.BigIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0)
    last_report = models.JSONField(default=dict, blank=True)  # the steps of the last run, as figures
    reconciled_on = models.DateTimeField(null=True, blank=True)  # the last reconciliation applied

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"subscription {self.pk} to {self.url}"

    @property
    def repository_parts(self) -> tuple[str, str, str, str]:
        """(owner kind, owner, repository type, repository): the same here as upstream."""
        match = REPOSITORY_PATH.search(self.url)
        if match is None:
            raise SubscriptionError(f"{self.url!r} is not a repository URL")
        return match.group(1), match.group(2), match.group(3), match.group(4)

    @property
    def follows(self) -> str:
        return " + ".join(name for name, on in (("released", self.follow_released), ("HEAD", self.follow_head)) if on)

    @property
    def credentials(self) -> str:
        """Where the token comes from, for display: never the token itself."""
        if self.token_env:
            return f"env:{self.token_env}"
        if self.token_file:
            return f"file:{self.token_file}"
        return "anonymous"

    def token(self) -> str | None:
        """The API token, read now from the variable or file the subscription names."""
        if self.token_env:
            value = os.environ.get(self.token_env, "")
            if not value:
                raise SubscriptionError(f"the environment variable {self.token_env} holding the token is not set")
            return value.strip()
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise SubscriptionError(f"cannot read the token file {self.token_file}: {exc.strerror}") from exc
        return None

    # --- state transitions: each one a single UPDATE, so concurrent runs cannot interleave ----

    def claim(self, stale_after: int) -> bool:
        """Mark a run as started; False when another run holds the subscription (and is not stale)."""
        now = timezone.now()
        free = models.Q(running_since__isnull=True) | models.Q(
            running_since__lt=now - timezone.timedelta(seconds=stale_after)
        )
        claimed = Subscription.objects.filter(free, pk=self.pk).update(running_since=now, last_run=now)
        if claimed:
            self.running_since = self.last_run = now
        return claimed == 1

    def record_step(self, received: int, applied: int, size: int, version: bool, reached: datetime | None) -> None:
        """Add one applied step's figures (its transaction has committed)."""
        updates = {
            "items_received": F("items_received") + received,
            "items_applied": F("items_applied") + applied,
            "bytes_received": F("bytes_received") + size,
            "versions_received": F("versions_received") + (1 if version else 0),
        }
        if reached is not None and (self.reached is None or reached > self.reached):
            updates["reached"] = reached
            self.reached = reached
        Subscription.objects.filter(pk=self.pk).update(**updates)

    def reconcile_due(self, now: datetime) -> bool:
        if not self.reconcile_hours:
            return False
        return self.reconciled_on is None or now - self.reconciled_on >= timezone.timedelta(hours=self.reconcile_hours)

    def record_reconciled(self, when: datetime) -> None:
        Subscription.objects.filter(pk=self.pk).update(reconciled_on=when)
        self.reconciled_on = when

    def finish(self, report: dict, error: str | None) -> None:
        now = timezone.now()
        updates: dict = {"running_since": None, "runs": F("runs") + 1, "last_report": report}
        if error is None:
            updates.update(last_success=now, last_error="")
        else:
            updates.update(last_error=error, last_error_on=now, failures=F("failures") + 1)
        Subscription.objects.filter(pk=self.pk).update(**updates)
        self.refresh_from_db()


def subscribe(
    url: str,
    *,
    token_env: str = "",
    token_file: str = "",
    follow_released: bool = True,
    follow_head: bool = True,
    interval: int = DEFAULT_INTERVAL,
    reconcile_hours: int = DEFAULT_RECONCILE_HOURS,
) -> tuple[Subscription, bool]:
    """Create the subscription to ``url``, or update the one that exists; (it, created)."""
    url = normalize_url(url)
    if token_env and token_file:
        raise SubscriptionError("name the token's environment variable or its file, not both")
    if not (follow_released or follow_head):
        raise SubscriptionError("a subscription follows released versions, HEAD, or both")
    if interval < 60:
        raise SubscriptionError(f"the interval is at least 60 seconds, not {interval}")
    if reconcile_hours < 0:
        raise SubscriptionError(f"reconcile every 0 hours (never) or more, not {reconcile_hours}")
    fields = {
        "token_env": token_env,
        "token_file": token_file,
        "follow_released": follow_released,
        "follow_head": follow_head,
        "interval": interval,
        "reconcile_hours": reconcile_hours,
    }
    return Subscription.objects.update_or_create(url=url, defaults=fields)
