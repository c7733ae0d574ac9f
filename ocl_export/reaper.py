"""Finding exports whose worker died or is stuck, so nothing stays pending or processing forever.

Each sweep first hands the jobs of dead workers back to RQ (``jobqueue.abandoned``), which retries
them: an export whose worker was killed completes without any client asking again.

A killed worker cannot record its own death. Signs give it away: a processing row whose heartbeat
stopped (the database alone tells), a processing row whose heartbeat beats but whose progress has
not moved for EXPORT_PROGRESS_STALE (a wedged job: it is failed and its RQ job stopped), and a row
whose RQ job has ended without moving the row. A pending row whose job Redis lost (a Redis restarted
empty) is queued again. What is checked, and how a row is healed, is ``ocl_export.standing``'s (the
requests ask it about their own row on the way); the ``reap_exports`` command asks it about every
row under way, and cleans up what dead jobs left in storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from jobqueue.abandoned import rescue_jobs_of_dead_workers
from jobqueue.queue import work_queue
from observability import metrics

from .models import ACTIVE_STATES, UNFINISHED_STATES, Export, ExportState, RedeemedLocation
from .standing import known, where_export_stands
from .storage import ExportStorage, StorageError, get_storage

logger = logging.getLogger(__name__)

# A used Location's row is needed only until its token expires (an expired token is refused on
# its own); it is kept a while longer for whoever investigates a download, then it is noise.
REDEEMED_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ReapSummary:
    failed: int
    uploads_aborted: int
    redeemed_forgotten: int


def reap_exports(upload_age_seconds: int | None = None, now: datetime | None = None) -> ReapSummary:
    """Fail dead exports, abort the uploads dead jobs left, forget the used download links
    whose tokens have expired.

    ``upload_age_seconds``: incomplete uploads older than this are aborted whoever started them;
    by default the job timeout plus an hour, so that no live upload is ever touched.
    """
    now = now or timezone.now()
    # First the jobs of workers that died: RQ retries them, and their rows go back to pending.
    rescue_jobs_of_dead_workers(work_queue())
    failed = 0
    for export in Export.objects.filter(state__in=ACTIVE_STATES).order_by("pk"):
        if where_export_stands(known(export), now=now).export.state == ExportState.FAILED:
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
    """A failed or cancelled row still naming a key is an attempt that died (or was stopped)
    mid-way: its upload (there can be no object, since only completed rows have one) is aborted now
    rather than after the age limit."""
    aborted = 0
    for export in Export.objects.filter(state__in=UNFINISHED_STATES).exclude(key=""):
        try:
            aborted += storage.abort_stale_uploads(export.key, 0)
        except StorageError:
            logger.warning("could not abort uploads of export %s", export.pk, exc_info=True)
            continue
        # Not a state change: only forgets a key that no longer leads anywhere.
        Export.objects.filter(pk=export.pk, state=export.state, key=export.key).update(key="")
    return aborted


def keys_in_progress() -> set[str]:
    """Keys that exports under way write to (each notes its key before its upload starts)."""
    return set(Export.objects.filter(state__in=ACTIVE_STATES).exclude(key="").values_list("key", flat=True))
