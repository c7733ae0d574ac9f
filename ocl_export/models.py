"""The export of one repository version in one format, and the download links used so far.

An :class:`Export` row is the state machine of one archive. Its state moves only through
:meth:`Export.transition`, a compare-and-set on (id, state, job id): whoever changes exactly one row
owns the move, so two workers, two requests or a worker and the reaper can never both win.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from repos.models import RepositoryVersion


class ExportState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ExportFormat(models.TextChoices):
    TGZ = "tgz", "tar + gzip"
    ZIP = "zip", "zip"


# The only moves an export may make. A completed export changes no more (it is deleted), unless
# its archive vanished from storage behind the service's back: then it fails, and a POST rebuilds it.
# processing -> pending is a temporary failure (or a dead worker) handed back to RQ for a retry.
# A repository admin cancels an export under way; like a failed one, it may be requested again.
TRANSITIONS: dict[str, frozenset[str]] = {
    ExportState.PENDING: frozenset({ExportState.PROCESSING, ExportState.FAILED, ExportState.CANCELLED}),
    ExportState.PROCESSING: frozenset(
        {ExportState.COMPLETED, ExportState.FAILED, ExportState.PENDING, ExportState.CANCELLED}
    ),
    ExportState.COMPLETED: frozenset({ExportState.FAILED}),
    ExportState.FAILED: frozenset({ExportState.PENDING}),
    ExportState.CANCELLED: frozenset({ExportState.PENDING}),
}

ACTIVE_STATES = (ExportState.PENDING, ExportState.PROCESSING)
# Ended without an archive: as good as no export (GET answers as for none, POST builds it again).
UNFINISHED_STATES = (ExportState.FAILED, ExportState.CANCELLED)


class IllegalTransition(Exception):
    """A programming error: the code asked for a move the state machine does not allow."""


class Export(models.Model):
    version = models.ForeignKey(RepositoryVersion, on_delete=models.CASCADE, related_name="exports")
    # Set: the archive is the delta from this (older) version to ``version`` (ocl_export.deltas),
    # made by the same job, row and state machine as an export.
    base = models.ForeignKey(RepositoryVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    format = models.CharField(max_length=8, choices=ExportFormat.choices, default=ExportFormat.TGZ)
    state = models.CharField(max_length=16, choices=ExportState.choices, default=ExportState.PENDING)
    # The RQ job of the current attempt: "export-<id>-<attempts>-<random>". Each re-queue gets a new
    # id so a late worker of an abandoned attempt can never move the row of the new one; the random
    # part keeps ids unique across database lifetimes (a restore, a re-created database, two
    # deployments on one Redis db), where RQ still holds finished jobs of the same row id.
    job_id = models.CharField(max_length=64, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    key = models.CharField(max_length=1024, blank=True, default="")
    file_name = models.CharField(max_length=512, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    last_updated = models.DateTimeField(null=True, blank=True)
    items_done = models.BigIntegerField(default=0)
    items_total = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_on = models.DateTimeField(default=timezone.now)
    queued_on = models.DateTimeField(null=True, blank=True)
    started_on = models.DateTimeField(null=True, blank=True)
    finished_on = models.DateTimeField(null=True, blank=True)
    heartbeat_on = models.DateTimeField(null=True, blank=True)
    # When items_done last moved (or the attempt started): a beating heartbeat without progress is
    # a stuck job, which the reaper fails after EXPORT_PROGRESS_STALE.
    progress_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "format"], condition=Q(base__isnull=True), name="one_export_per_version_format"
            ),
            models.UniqueConstraint(
                fields=["version", "base", "format"], condition=Q(base__isnull=False), name="one_delta_per_pair_format"
            ),
        ]
        indexes = [
            # The reaper's sweep: only the few rows under way.
            models.Index(fields=["state"], name="export_active", condition=Q(state__in=ACTIVE_STATES)),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.format} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def percent(self) -> int:
        if self.state == ExportState.COMPLETED:
            return 100
        if not self.items_total:
            return 0
        return min(99, int(self.items_done * 100 / self.items_total))

    @classmethod
    def create_pending(
        cls,
        version: RepositoryVersion,
        fmt: str,
        user: Any,
        now: datetime | None = None,
        base: RepositoryVersion | None = None,
    ) -> Export:
        """The first attempt of a new export (or delta from ``base``). Raises IntegrityError when a
        concurrent request won the unique constraint, so callers run it inside a savepoint."""
        now = now or timezone.now()
        export = cls.objects.create(version=version, base=base, format=fmt, state=ExportState.PENDING, created_on=now)
        # The job id needs the primary key, hence a second statement in the same transaction.
        fields = fresh_attempt_fields(export.pk, 1, user, now)
        cls.objects.filter(pk=export.pk).update(**fields)
        for name, value in fields.items():
            setattr(export, name, value)
        return export

    @staticmethod
    def job_id_for(pk: int, attempt: int) -> str:
        return f"export-{pk}-{attempt}-{secrets.token_hex(4)}"

    def transition(self, new_state: str, *, expect_job_id: str | None = None, **fields: Any) -> bool:
        """Move from the state this instance holds to ``new_state`` if nobody moved it first.

        ``expect_job_id`` (when given) must also match, so only the current attempt's worker moves
        the row.
        On success the instance holds the new values; on a lost race it is left as it was.
        """
        allowed = TRANSITIONS[self.state]
        if new_state not in allowed:
            raise IllegalTransition(f"export {self.pk}: {self.state} -> {new_state} is not allowed")
        match = Export.objects.filter(pk=self.pk, state=self.state)
        if expect_job_id is not None:
            match = match.filter(job_id=expect_job_id)
        changed = match.update(state=new_state, **fields)
        if changed != 1:
            return False
        self.state = new_state
        for name, value in fields.items():
            setattr(self, name, value)
        return True

    def requeue(self, user: Any, now: datetime | None = None) -> bool:
        """failed or cancelled -> pending with a fresh job id; the outcome of the last attempt is cleared."""
        now = now or timezone.now()
        attempt = self.attempts + 1
        return self.transition(
            ExportState.PENDING,
            expect_job_id=self.job_id,
            **fresh_attempt_fields(self.pk, attempt, user, now),
        )


def key_in_use(key: str) -> bool:
    """Some export that is under way or completed writes or holds the archive at ``key`` (exports
    of one version and lastUpdated share a key: same name, same bytes), so its object must stay."""
    return Export.objects.filter(key=key).exclude(state__in=UNFINISHED_STATES).exists()


def fresh_attempt_fields(pk: int, attempt: int, user: Any, now: datetime) -> dict[str, Any]:
    """Everything a new attempt starts from: a new job id and no outcome of an earlier one."""
    return {
        "attempts": attempt,
        "job_id": Export.job_id_for(pk, attempt),
        "requested_by": user if user is not None and user.is_authenticated else None,
        "queued_on": now,
        "started_on": None,
        "finished_on": None,
        "heartbeat_on": None,
        "progress_on": None,
        "items_done": 0,
        "items_total": None,
        "error": "",
        "key": "",
        "file_name": "",
        "size": None,
        "sha256": "",
        "last_updated": None,
    }


class RedeemedLocation(models.Model):
    """A Location that was used: the nonce of its token, the primary key that makes it one-use.

    Nothing is stored when a Location is issued (see ``locations``); a row exists only once one is
    redeemed, and is needed only until the token expires, after which the reaper forgets it.
    """

    nonce = models.CharField(max_length=32, primary_key=True)
    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="redeemed_locations")
    redeemed_on = models.DateTimeField()
    expires_on = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_on"], name="redeemed_expires_on")]
