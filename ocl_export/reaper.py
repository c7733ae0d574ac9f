"""Finding exports whose worker died or is stuck, so nothing stays pending or processing forever.

A killed worker cannot record its own death. Signs give it away: a processing row whose heartbeat
stopped (the database alone tells), a processing row whose heartbeat beats but whose progress has
not moved for EXPORT_PROGRESS_STALE (a wedged job: it is failed and its RQ job stopped), and a row
whose RQ job has ended without moving the row. A pending row whose job Redis lost (a Redis restarted
empty) is queued again. The GET of an export checks its own row on the way; the ``reap_exports``
command sweeps all of them and cleans up what dead jobs left in storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from foundation.errors import ServiceUnavailable
from jobqueue.queue import MISSING, is_dead, job_status, stop_job
from observability import metrics

from .models import ACTIVE_STATES, Export, ExportState, RedeemedLocation
from .queue import enqueue_export_job
from .storage import ExportStorage, StorageError, get_storage

logger = logging.getLogger(__name__)

# A new row is committed a moment before its job reaches Redis (enqueue runs on commit): a job
# missing from Redis means nothing until this long after the row was queued. (Queueing it again
# early would be harmless, a job id is queued once, but it is needless work.)
QUEUE_GRACE = timedelta(seconds=5)
# A used Location's row is needed only until its token expires (an expired token is refused on
# its own); it is kept a while longer for whoever investigates a download, then it is noise.
REDEEMED_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ReapSummary:
    failed: int
    uploads_aborted: int
    redeemed_forgotten: int


def death_reason(export: Export, now: datetime, status: str | None) -> str | None:
    """Why this pending/processing export can be declared dead, or None while it may be alive.
    ``status``: its RQ job's (see :func:`job_status`)."""
    if export.state == ExportState.PROCESSING:
        last_sign = export.heartbeat_on or export.started_on
        stale = timedelta(seconds=settings.EXPORT_HEARTBEAT_STALE)
        if last_sign is None or last_sign < now - stale:
            return f"The worker stopped responding (no heartbeat for {settings.EXPORT_HEARTBEAT_STALE} s)."
        last_progress = export.progress_on or export.started_on
        if last_progress is not None and last_progress < now - timedelta(seconds=settings.EXPORT_PROGRESS_STALE):
            return f"The export made no progress for {settings.EXPORT_PROGRESS_STALE} s; its job was stopped."
        if status == MISSING:
            return None  # Redis lost the job (restarted empty), but the heartbeat says it still runs
    if not is_dead(status):
        return None  # alive, or Redis does not answer: nobody can tell
    if status == MISSING:
        return None  # a pending row: queued again by check_export
    return f"The export job ended without finishing the export (job {status})."


def check_export(export: Export, now: datetime | None = None) -> Export:
    """The export as it stands after declaring it failed if its job is dead (and stopping that job,
    should it still run), or after queueing its job again if Redis lost it before it started."""
    if export.state not in ACTIVE_STATES:
        return export
    now = now or timezone.now()
    status = job_status(export.job_id)
    if export.state == ExportState.PENDING and status == MISSING:
        if export.queued_on is None or export.queued_on < now - QUEUE_GRACE:
            requeue_lost_job(export)
        return export
    reason = death_reason(export, now, status)
    if reason is None:
        return export
    was_processing = export.state == ExportState.PROCESSING
    if export.transition(ExportState.FAILED, expect_job_id=export.job_id, error=reason, finished_on=now):
        logger.warning("export %s declared failed: %s", export.pk, reason)
        metrics.export_failed(export.format, "worker_lost")
        if was_processing:
            stop_job(export.job_id)  # a stuck job still holds its worker (and a database backend)
    else:
        export.refresh_from_db()  # it moved meanwhile (it finished, or someone else reaped it)
    return export


def requeue_lost_job(export: Export) -> None:
    """Redis forgot a pending row's job (restarted empty, flushed): queue the same job id again."""
    try:
        enqueue_export_job(export.pk, export.job_id)
    except ServiceUnavailable:
        return  # Redis is away again; the next sweep tries once more
    logger.warning("export %s: Redis had lost its job %s; queued it again", export.pk, export.job_id)


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
        # Never the upload of an export under way, however old it looks: S3 servers disagree on
        # clocks, and some (moto) date every upload years back.
        aborted += storage.abort_stale_uploads("", age, spare=keys_in_progress)
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


def keys_in_progress() -> set[str]:
    """Keys that exports under way write to (each notes its key before its upload starts)."""
    return set(Export.objects.filter(state__in=ACTIVE_STATES).exclude(key="").values_list("key", flat=True))
