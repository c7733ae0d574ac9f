"""Where does an export stand now? One function answers it for every caller: :func:`where_export_stands`.

A row says what its last writer knew, and the world may have moved since: a killed worker cannot
record its own death, Redis may lose a queued job (restarted empty), an archive may vanish from the
bucket behind the service's back (deleted, a bucket restored from an older copy). So the answer
may have to change the row first, and these reads that write are the *self-healing* of a look:

- a processing row of a worker that died goes to RQ, which retries its job (``jobqueue.abandoned``);
- a pending or processing row whose job is dead otherwise is failed (and a stuck job is stopped);
- a pending row whose job Redis lost is queued again, under the same job id;
- a completed row whose archive is gone from storage is failed, so a POST builds it again.

They happen here and nowhere else, and the answer says which one did (:class:`Healing`). The
export resource (GET, POST, DELETE), its status link, the one-use download and the reaper ask
here; GET's common case (a completed export of a named version) is read through the read cache.

Signs of a dead job: a processing row whose heartbeat stopped (the database alone tells), a
processing row whose heartbeat beats but whose progress has not moved for EXPORT_PROGRESS_STALE
(a wedged job), and a row whose RQ job has ended without moving the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cached_property

from django.conf import settings
from django.utils import timezone

from foundation.errors import ServiceUnavailable
from jobqueue.abandoned import rescue_jobs_of_dead_workers
from jobqueue.queue import MISSING, is_dead, job_status, stop_job, work_queue
from observability import metrics
from read_cache.store import get_store
from repos.models import RepositoryVersion

from .jobs import is_out_of_date
from .models import ACTIVE_STATES, UNFINISHED_STATES, Export, ExportState
from .profiles import Reply, Situation, current_profile
from .queue import enqueue_export_job
from .storage import ExportStorage, StorageError, get_storage

logger = logging.getLogger(__name__)

# A new row is committed a moment before its job reaches Redis (enqueue runs on commit): a job
# missing from Redis means nothing until this long after the row was queued. (Queueing it again
# early would be harmless, a job id is queued once, but it is needless work.)
QUEUE_GRACE = timedelta(seconds=5)
ARCHIVE_MISSING = "The archive was missing from storage; request the export again."

Finder = Callable[[], Export | None]


class Healing(Enum):
    """What a look at an export changed so that its row tells the truth."""

    NOTHING = "nothing"
    FAILED_DEAD_JOB = "failed the row: its job is dead"
    REQUEUED_LOST_JOB = "queued its job again: Redis had lost it"
    HANDED_BACK_TO_RQ = "handed its job back to RQ: its worker had died"
    FAILED_MISSING_ARCHIVE = "failed the row: its archive is missing from storage"


class ArchiveCheck(Enum):
    """Whether the look also makes sure a completed export's archive is there."""

    NEVER = "never"
    # Only when the answer would send the client straight to storage (a presigned URL, OCL v2 with
    # S3): that redirect skips the service, so a missing archive must be caught before it. A
    # one-use link of this service is checked when it is redeemed instead.
    BEFORE_REDIRECT_TO_STORAGE = "before a redirect to storage"
    # The archive is about to be served (the one-use link is being redeemed).
    ALWAYS = "always"


@dataclass
class Standing:
    """The export as it stands (None: there is none) and what the look did to it."""

    export: Export | None
    healed: Healing = Healing.NOTHING

    @cached_property
    def situation(self) -> Situation:
        """How the export resource sees it: none (or failed, cancelled, an out-of-date one of HEAD),
        busy, or ready."""
        export = self.export
        if export is None or export.state in UNFINISHED_STATES or is_out_of_date(export):
            return Situation.NONE
        if export.is_active:
            return Situation.BUSY
        return Situation.READY


def where_export_stands(
    find: Finder, *, archive: ArchiveCheck = ArchiveCheck.NEVER, now: datetime | None = None
) -> Standing:
    """Find the export (``find``), check its job, and its archive as ``archive`` says, healing the
    row where it lies (see the module docstring); the standing says what was done.

    Raises ServiceUnavailable when the archive store cannot tell whether the archive is there."""
    export = find()
    if export is None:
        return Standing(None)
    standing = Standing(export, heal_job(export, now))
    if archive is ArchiveCheck.NEVER or standing.healed is not Healing.NOTHING:
        return standing
    if archive is ArchiveCheck.BEFORE_REDIRECT_TO_STORAGE and not redirects_to_storage(standing):
        return standing
    try:
        missing = fail_if_archive_missing(export, get_storage(), now)
    except StorageError as exc:
        raise ServiceUnavailable("The archive store is unavailable; try again shortly.", retry_after=5) from exc
    if not missing:
        return standing
    if export.state == ExportState.COMPLETED:
        export.refresh_from_db()  # someone else moved it first: as it stands now
    return Standing(export, Healing.FAILED_MISSING_ARCHIVE)


# --- finding the row ----------------------------------------------------------------------------


def known(export: Export | None) -> Finder:
    """A row the caller holds already."""
    return lambda: export


def of_version(version: RepositoryVersion, fmt: str, base: RepositoryVersion | None = None) -> Finder:
    """The export of ``version`` in ``fmt``, or with ``base`` its delta from that version."""
    return lambda: Export.objects.filter(version=version, format=fmt, base=base).first()


def completed_first(
    key: Hashable, completed: Finder, version_of: Callable[[], RepositoryVersion], fmt: Callable[[], str]
) -> Finder:
    """GET's finder: its common case, the completed export of a named version, in one query kept
    by the read cache under ``key`` until the database changes; otherwise the version's row, found
    step by step (``version_of`` refuses what the caller may not ask)."""

    def find() -> Export | None:
        found = get_store().remember(key, completed)
        if found is not None:
            return found
        return of_version(version_of(), fmt())()

    return find


# --- the checks and their healing ---------------------------------------------------------------


def redirects_to_storage(standing: Standing) -> bool:
    if standing.export is None or standing.export.state != ExportState.COMPLETED:
        return False
    if not get_storage().is_remote or current_profile().answer("GET", Situation.READY).reply is not Reply.ARCHIVE:
        return False
    return standing.situation is Situation.READY


def death_reason(export: Export, now: datetime, status: str | None) -> str | None:
    """Why this pending/processing export can be declared dead, or None while it may be alive.
    ``status``: its RQ job's (see :func:`jobqueue.queue.job_status`)."""
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
        return None  # a pending row: queued again by heal_job
    return f"The export job ended without finishing the export (job {status})."


def heal_job(export: Export, now: datetime | None = None) -> Healing:
    """Declare the export failed if its job is dead (stopping that job, should it still run), or
    queue its job again if Redis lost it before it started. ``export`` is left as it now stands."""
    if export.state not in ACTIVE_STATES:
        return Healing.NOTHING
    now = now or timezone.now()
    status = job_status(export.job_id)
    if export.state == ExportState.PENDING and status == MISSING:
        if export.queued_on is None or export.queued_on < now - QUEUE_GRACE:
            return requeue_lost_job(export)
        return Healing.NOTHING
    reason = death_reason(export, now, status)
    if reason is None:
        return Healing.NOTHING
    if export.state == ExportState.PROCESSING and hand_back_if_worker_died(export):
        return Healing.HANDED_BACK_TO_RQ
    was_processing = export.state == ExportState.PROCESSING
    if export.transition(ExportState.FAILED, expect_job_id=export.job_id, error=reason, finished_on=now):
        logger.warning("export %s declared failed: %s", export.pk, reason)
        metrics.export_failed(export.format, "worker_lost")
        if was_processing:
            stop_job(export.job_id)  # a stuck job still holds its worker (and a database backend)
        return Healing.FAILED_DEAD_JOB
    export.refresh_from_db()  # it moved meanwhile (it finished, or someone else reaped it)
    return Healing.NOTHING


def hand_back_if_worker_died(export: Export) -> bool:
    """A processing row that looks dead may be the job of a worker that died: RQ then retries it
    (or fails it, its retries spent) and the job's failure callback moves the row. True when the
    row moved so (``export`` then holds it as it now stands)."""
    rescue_jobs_of_dead_workers(work_queue())
    state, job_id = export.state, export.job_id
    export.refresh_from_db()
    return (export.state, export.job_id) != (state, job_id)


def requeue_lost_job(export: Export) -> Healing:
    """Redis forgot a pending row's job (restarted empty, flushed): queue the same job id again."""
    try:
        enqueue_export_job(export.pk, export.job_id)
    except ServiceUnavailable:
        return Healing.NOTHING  # Redis is away again; the next look tries once more
    logger.warning("export %s: Redis had lost its job %s; queued it again", export.pk, export.job_id)
    return Healing.REQUEUED_LOST_JOB


def fail_if_archive_missing(export: Export, storage: ExportStorage, now: datetime | None = None) -> bool:
    """True (and the row failed) when a completed export's archive is gone from storage. The export
    then answers as if there were none, and a POST builds it again. Raises StorageError when
    storage cannot tell."""
    if storage.exists(export.key):
        return False
    if export.transition(ExportState.FAILED, error=ARCHIVE_MISSING, finished_on=now or timezone.now()):
        logger.warning("export %s declared failed: its archive %s is missing from storage", export.pk, export.key)
        metrics.export_failed(export.format, "archive_missing")
    return True
