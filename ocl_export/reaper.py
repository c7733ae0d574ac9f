"""Finding exports whose worker died, so nothing stays pending or processing forever.

A killed worker cannot record its own death. Two signs give it away: a processing row whose
heartbeat stopped (the database alone tells), and a row whose RQ job Redis no longer knows or has
finished without moving the row. The GET of an export checks its own row on the way; the
``reap_exports`` command sweeps all of them and cleans up what dead jobs left in storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import metrics
from .models import ACTIVE_STATES, Export, ExportState, RedeemedLocation
from .queue import MISSING, is_dead, job_status
from .storage import ExportStorage, StorageError, get_storage

logger = logging.getLogger(__name__)

# A new row is committed a moment before its job reaches Redis (enqueue runs on commit): a job
# missing from Redis means nothing until this long after the row was queued.
QUEUE_GRACE = timedelta(seconds=30)
# A used Location's row is needed only until its token expires (an expired token is refused on
# its own); it is kept a while longer for whoever investigates a download, then it is noise.
REDEEMED_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ReapSummary:
    failed: int
    uploads_aborted: int
    redeemed_forgotten: int


def death_reason(export: Export, now: datetime) -> str | None:
    """Why this pending/processing export can be declared dead, or None while it may be alive."""
    if export.state == ExportState.PROCESSING:
        last_sign = export.heartbeat_on or export.started_on
        stale = timedelta(seconds=settings.EXPORT_HEARTBEAT_STALE)
        if last_sign is None or last_sign < now - stale:
            return f"The worker stopped responding (no heartbeat for {settings.EXPORT_HEARTBEAT_STALE} s)."
    status = job_status(export.job_id)
    if not is_dead(status):
        return None  # alive, or Redis does not answer: nobody can tell
    if status == MISSING and export.queued_on is not None and export.queued_on > now - QUEUE_GRACE:
        return None
    return f"The export job ended without finishing the export (job {status})."


def check_export(export: Export, now: datetime | None = None) -> Export:
    """The export as it stands after declaring it failed if its job is dead."""
    if export.state not in ACTIVE_STATES:
        return export
    now = now or timezone.now()
    reason = death_reason(export, now)
    if reason is None:
        return export
    if export.transition(ExportState.FAILED, expect_job_id=export.job_id, error=reason, finished_on=now):
        logger.warning("export %s declared failed: %s", export.pk, reason)
        metrics.export_failed(export.format, "worker_lost")
    else:
        export.refresh_from_db()  # it moved meanwhile (it finished, or someone else reaped it)
    return export


ARCHIVE_MISSING = "The archive was missing from storage; request the export again."


def fail_if_archive_missing(export: Export, storage: ExportStorage, now: datetime | None = None) -> bool:
    """True (and the row failed) when a completed export's archive is gone from storage: deleted
    behind the service's back, a bucket restored from an older copy. The export then answers as if
    there were none, and a POST builds it again. Raises StorageError when storage cannot tell."""
    if storage.exists(export.key):
        return False
    if export.transition(ExportState.FAILED, error=ARCHIVE_MISSING, finished_on=now or timezone.now()):
        logger.warning("export %s declared failed: its archive %s is missing from storage", export.pk, export.key)
        metrics.export_failed(export.format, "archive_missing")
    return True


def reap_exports(upload_age_seconds: int | None = None, now: datetime | None = None) -> ReapSummary:
    """Fail dead exports, abort the uploads dead jobs left, forget the used download links
    whose tokens have expired.

    ``upload_age_seconds``: incomplete uploads older than this are aborted whoever started them;
    by default the job timeout plus an hour, so that no live upload is ever touched.
    """
    now = now or timezone.now()
    failed = 0
    for export in Export.objects.filter(state__in=ACTIVE_STATES).order_by("pk"):
        if check_export(export, now).state == ExportState.FAILED:
            failed += 1
    storage = get_storage()
    aborted = abort_uploads_of_failed(storage)
    age = settings.EXPORT_JOB_TIMEOUT + 3600 if upload_age_seconds is None else upload_age_seconds
    try:
        aborted += storage.abort_stale_uploads("", age)
    except StorageError:
        logger.warning("could not sweep stale uploads", exc_info=True)
    forgotten, _ = RedeemedLocation.objects.filter(expires_on__lt=now - REDEEMED_RETENTION).delete()
    metrics.reaper_swept(failed=failed, uploads_aborted=aborted, redeemed_forgotten=forgotten)
    return ReapSummary(failed=failed, uploads_aborted=aborted, redeemed_forgotten=forgotten)


def abort_uploads_of_failed(storage: ExportStorage) -> int:
    """A failed row still naming a key is an attempt that died mid-way: its upload (there can be no
    object, since only completed rows have one) is aborted now rather than after the age limit."""
    aborted = 0
    for export in Export.objects.filter(state=ExportState.FAILED).exclude(key=""):
        try:
            aborted += storage.abort_stale_uploads(export.key, 0)
        except StorageError:
            logger.warning("could not abort uploads of export %s", export.pk, exc_info=True)
            continue
        # Not a state change: only forgets a key that no longer leads anywhere.
        Export.objects.filter(pk=export.pk, state=ExportState.FAILED, key=export.key).update(key="")
    return aborted
