"""Cancelling an export under way: one function, whoever asks (the export resource's DELETE, the
job status link's DELETE).

The row moves first (pending or processing -> cancelled, a compare-and-set like every move), so
a worker that has not claimed the job yet never will, and one that has can no longer publish:
its last move needs the row still processing. Then the job is made never to run again (RQ's
cancel for a queued or scheduled job, RQ's stop-job command for a running one: its worker kills
the horse and goes on with the next job), and what it may have left in storage goes: its
unfinished multipart upload is aborted, and an object it managed to publish is deleted. Should
the horse not have died within a few seconds, or storage not answer, the row keeps its key and the
reaper's sweep aborts what is left (``ocl_export.reaper``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from jobqueue.queue import cancel_job
from observability import metrics

from .models import Export, ExportState, key_in_use
from .storage import StorageError, get_storage

logger = logging.getLogger(__name__)


def cancel_export(export: Export, user: Any = None) -> bool:
    """Cancel ``export`` if it is pending or processing; False when it was not (it had finished,
    or someone moved it first). ``export`` is left as it now stands."""
    if not export.is_active:
        return False
    who = getattr(user, "username", "") or "an administrator"
    if not export.transition(
        ExportState.CANCELLED,
        expect_job_id=export.job_id,
        error=f"Cancelled by {who}.",
        finished_on=timezone.now(),
        heartbeat_on=None,
    ):
        export.refresh_from_db()
        return False
    logger.warning("export %s cancelled by %s; stopping job %s", export.pk, who, export.job_id)
    metrics.export_cancelled(export.format)
    stopped = cancel_job(export.job_id)
    # The job may have noted its key after this instance was read: the row says.
    export.key = Export.objects.filter(pk=export.pk).values_list("key", flat=True).first() or ""
    if stopped and export.key:
        remove_what_it_left(export)
    return True


def remove_what_it_left(export: Export) -> None:
    """Abort the cancelled attempt's upload and delete an object it published, unless another
    export holds the same key; then the row forgets its key."""
    storage = get_storage()
    try:
        storage.abort_stale_uploads(export.key, 0)
        if not key_in_use(export.key):
            storage.delete(export.key)
    except (StorageError, OSError):
        logger.warning(
            "export %s: could not clean up after its cancelled job; the reaper will", export.pk, exc_info=True
        )
        return
    Export.objects.filter(pk=export.pk, state=ExportState.CANCELLED, key=export.key).update(key="")
    export.key = ""
