"""Queueing an export (the request side) and running it (the RQ job).

The request side claims the (version, format) row inside a transaction and enqueues only after the
commit, so a worker never picks up a job whose row it cannot see. The job reloads its row, claims it
with a compare-and-set, heartbeats while it works, and publishes the archive before it marks the row
completed: a completed row always has its object in storage.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job

from foundation.archive import archive_file_name
from foundation.errors import Conflict, ServiceUnavailable
from observability import metrics
from repos.deltas import predecessor
from repos.models import RepositoryVersion
from repos.representation.items import CONCEPTS, EVERYTHING, MAPPINGS, count_items

from .delta_archive import plan_delta
from .models import ACTIVE_STATES, Export, ExportState, key_in_use
from .produce import produce_archive
from .queue import enqueue_export_job
from .storage import StorageError, export_key, get_storage

logger = logging.getLogger(__name__)

# Worth another attempt: the archive itself was fine, the world around it was not. The export reads
# with psycopg directly (repos/copy_out.py), whose errors Django does not wrap: both kinds count.
TEMPORARY_ERRORS: tuple[type[BaseException], ...] = (
    StorageError,
    OperationalError,
    psycopg.OperationalError,
    ConnectionError,
    TimeoutError,
)
PROGRESS_EVERY = 1.0  # seconds between progress writes: a row update per batch would be wasteful


# --- the request side ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueOutcome:
    export: Export
    queued: bool  # False: the export was already completed, nothing queued


def queue_export(
    version: RepositoryVersion, fmt: str, user: Any, base: RepositoryVersion | None = None
) -> QueueOutcome:
    """Create (or re-arm a failed) export of ``version`` (the delta from ``base`` when given) and
    queue its job after the commit.

    Raises Conflict when an export is already pending or processing (or a concurrent request won
    the race), ServiceUnavailable when Redis does not take the job (the row is then failed).
    """
    now = timezone.now()
    with transaction.atomic():
        export = Export.objects.filter(version=version, format=fmt, base=base).first()
        if export is not None and is_out_of_date(export):
            # HEAD moved on since this archive was made: it goes (its object after the commit, see
            # receivers.delete_archive, before the new job is enqueued) and a new one is built.
            Export.objects.filter(pk=export.pk, state=ExportState.COMPLETED).delete()
            export = None
        if export is None:
            try:
                # A savepoint, so the unique constraint's verdict does not poison the transaction.
                with transaction.atomic():
                    export = Export.create_pending(version, fmt, user, now, base)
            except IntegrityError as exc:
                raise Conflict() from exc
        elif export.state == ExportState.COMPLETED:
            return QueueOutcome(export, queued=False)
        elif export.is_active or not export.requeue(user, now):
            raise Conflict()
        transaction.on_commit(partial(enqueue_or_fail, export))
    return QueueOutcome(export, queued=True)


def is_out_of_date(export: Export) -> bool:
    """A completed export of HEAD no longer holds HEAD's live state: HEAD's lastUpdated (the stamp
    in the archive's name) or its number of items has changed since. Snapshots never change."""
    version = export.version
    if not version.is_head or export.state != ExportState.COMPLETED:
        return False
    total = count_items(CONCEPTS, version, EVERYTHING) + count_items(MAPPINGS, version, EVERYTHING)
    return export.last_updated != version.get_last_updated() or export.items_total != total


def enqueue_or_fail(export: Export) -> None:
    """Runs right after the commit. A row must not claim a job that Redis never took."""
    try:
        enqueue_export_job(export.pk, export.job_id)
    except ServiceUnavailable:
        metrics.export_failed(export.format, "queue_unavailable")
        export.transition(
            ExportState.FAILED,
            expect_job_id=export.job_id,
            error="The job queue was unavailable; request the export again.",
            finished_on=timezone.now(),
        )
        raise


# --- the job -------------------------------------------------------------------------------


class Heartbeat(threading.Thread):
    """Touches ``heartbeat_on`` every interval, and writes ``items_done`` at most every
    PROGRESS_EVERY seconds, on its own database connection: the reaper can tell a slow export from
    a dead worker even while the job thread is busy in one long query, and the job's connection
    writes nothing while it reads the version in one snapshot (a write to the export row there
    would conflict with these)."""

    def __init__(self, export_id: int, job_id: str, interval: float) -> None:
        super().__init__(name=f"export-{export_id}-heartbeat", daemon=True)
        self.export_id = export_id
        self.job_id = job_id
        self.interval = interval
        self.stopped = threading.Event()
        self.items_done = 0  # set by the job thread (see report); read here
        self.written_items = 0
        self.activity = 0  # bumped by the job thread on work that is not items (see touch)
        self.written_activity = 0
        self.last_beat = time.monotonic()

    def report(self, items_done: int) -> None:
        """``on_progress`` for produce_archive: only remembers the count (an int store is atomic)."""
        self.items_done = items_done

    def touch(self) -> None:
        """``on_activity`` for produce_archive: progress other than items (an int store is atomic)."""
        self.activity += 1

    def run(self) -> None:
        try:
            while not self.stopped.wait(min(PROGRESS_EVERY, self.interval)):
                self.beat()
        finally:
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        fields: dict[str, Any] = {}
        if self.items_done != self.written_items:
            fields["items_done"] = self.items_done
        if self.items_done != self.written_items or self.activity != self.written_activity:
            fields["progress_on"] = timezone.now()
        if time.monotonic() - self.last_beat >= self.interval:
            fields["heartbeat_on"] = timezone.now()
        if not fields:
            return
        try:
            Export.objects.filter(pk=self.export_id, job_id=self.job_id, state=ExportState.PROCESSING).update(**fields)
        except DatabaseError:
            # A missed beat is what the reaper is for; the next one may get through. A dropped
            # connection (a restarted server, pg_terminate_backend) stays broken until closed:
            # close it, so that the next beat opens a new one.
            logger.warning("export %s: heartbeat failed", self.export_id, exc_info=True)
            with contextlib.suppress(DatabaseError):
                connection.close()
            return
        self.written_items = fields.get("items_done", self.written_items)
        self.written_activity = self.activity
        if "heartbeat_on" in fields:
            self.last_beat = time.monotonic()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 5)


def run_export(export_id: int) -> dict[str, Any]:
    """The RQ job: produce the archive of one export row and record the outcome on the row."""
    if not connection.in_atomic_block:
        # A SimpleWorker keeps its connection between jobs; the database may have dropped it since.
        close_old_connections()
    export = (
        Export.objects.select_related("version__repository__owner_org", "version__repository__owner_user")
        .filter(pk=export_id)
        .first()
    )
    if export is None:
        return {"export": export_id, "outcome": "gone"}
    current = get_current_job()
    job_id = current.id if current is not None else export.job_id
    now = timezone.now()
    claimed = export.state == ExportState.PENDING and export.transition(
        ExportState.PROCESSING, expect_job_id=job_id, started_on=now, heartbeat_on=now, progress_on=now, items_done=0
    )
    if not claimed:
        # Another worker has it, or this attempt was abandoned and superseded.
        return {"export": export_id, "outcome": "not claimed", "state": export.state}
    heartbeat = Heartbeat(export.pk, job_id, settings.EXPORT_HEARTBEAT_INTERVAL)
    heartbeat.start()
    try:
        outcome = produce_and_publish(export, job_id, heartbeat.report, heartbeat.touch)
    except Exception as exc:
        record_failure(export, job_id, exc)
        raise  # RQ records the traceback (and retries temporary failures)
    finally:
        heartbeat.stop()
    return outcome


def produce_and_publish(
    export: Export, job_id: str, on_progress: Callable[[int], None], on_activity: Callable[[], None] | None = None
) -> dict[str, Any]:
    version = export.version
    repository = version.repository
    last_updated = version.get_last_updated()
    delta = plan_delta(export) if export.base_id is not None else None
    if delta is not None:
        file_name, total = delta.file_name, delta.total
    else:
        file_name = archive_file_name(repository.mnemonic, version.version, last_updated, export.format)
        total = count_items(CONCEPTS, version, EVERYTHING) + count_items(MAPPINGS, version, EVERYTHING)
    key = export_key(
        repository.owner_type, repository.owner_mnemonic, repository.repo_type, repository.mnemonic, file_name
    )
    # The key is noted before the upload starts, so the reaper can abort the upload of a killed job.
    Export.objects.filter(pk=export.pk, job_id=job_id, state=ExportState.PROCESSING).update(
        items_total=total, key=key, file_name=file_name
    )
    export.items_total, export.key, export.file_name = total, key, file_name
    # Whatever earlier attempts of this export left at its key (a killed work horse's upload) goes
    # now: this attempt owns the key, and its own upload must be the only one left behind it.
    get_storage().abort_stale_uploads(key, 0)

    if delta is not None:
        result = delta.produce(key, on_progress)
    else:
        result = produce_archive(version, export.format, key, on_progress, last_updated, on_activity)

    # The object is published; only now may the row say so.
    completed = export.transition(
        ExportState.COMPLETED,
        expect_job_id=job_id,
        key=key,
        file_name=file_name,
        size=result.size,
        sha256=result.sha256,
        last_updated=last_updated,
        items_done=total,
        finished_on=timezone.now(),
        error="",
    )
    if not completed:
        discard_unclaimed_object(export.pk, key)
        return {"export": export.pk, "outcome": "abandoned"}
    metrics.export_completed(export, total)
    if delta is None:
        queue_release_delta(export)
    return {"export": export.pk, "outcome": "completed", "key": key, "size": result.size, "sha256": result.sha256}


def queue_release_delta(export: Export) -> None:
    """A released version's export is done, so its delta from the previous release can be made
    now (the delta announces this export's sha256): subscribers find it in the release feed."""
    version = export.version
    if not settings.EXPORT_DELTA_ON_RELEASE or not version.released or version.is_head:
        return
    older = predecessor(version)
    if older is None:
        return
    try:
        queue_export(version, export.format, None, base=older)
    except APIException as exc:
        # Made already or being made (409), or Redis is away: a POST of the delta still makes it.
        logger.info("export %s: delta from %s not queued: %s", export.pk, older.version, exc.detail)


def discard_unclaimed_object(export_id: int, key: str) -> None:
    """The row was deleted or this attempt was declared dead while it worked. The object it just
    published must not outlive it, unless a newer attempt (of this row, or of a row created after a
    delete) works on the same key: same version, same lastUpdated, so the same bytes, and once
    completed that row must keep its object."""
    if key_in_use(key):
        return
    try:
        get_storage().delete(key)
    except StorageError:
        logger.exception("export %s: could not delete abandoned object %s", export_id, key)


def attempt_of(job: Job) -> int:
    """Which run of its job this is (1 for the first): RQ counts down ``retries_left`` from one
    retry per EXPORT_RETRY_DELAYS entry, and the job keeps those delays."""
    return 1 + len(job.retry_intervals or []) - (job.retries_left or 0)


def attempts_said(attempts: int) -> str:
    return f"after {attempts} attempt{'s' if attempts != 1 else ''}"


def record_horse_death(export_id: int, job_id: str, what: str, retrying: bool, attempt: int = 1) -> None:
    """The work horse running ``job_id`` died without a word (a signal, the OOM killer, its worker
    killed): RQ's worker, or whoever found the dead worker, calls this at once. The row goes back
    to pending for RQ's retry, or fails saying how many attempts were made."""
    export = Export.objects.filter(pk=export_id, job_id=job_id, state__in=ACTIVE_STATES).first()
    if export is None:
        return  # the attempt had ended, or was superseded (or cancelled)
    if retrying:
        if export.state == ExportState.PROCESSING:
            export.transition(ExportState.PENDING, expect_job_id=job_id, error=f"{what}; will retry", heartbeat_on=None)
    else:
        error = f"{what}; gave up {attempts_said(attempt)}."
        export.transition(ExportState.FAILED, expect_job_id=job_id, error=error, finished_on=timezone.now())
        metrics.export_failed(export.format, "worker_lost")
    logger.warning("export %s: %s (%s)", export_id, what, "retrying" if retrying else "final")


def on_job_failure(job: Job, redis: Any, exc_type: type, exc_value: BaseException, tb: Any) -> None:
    """RQ's failure callback of an export job. A failure raised in the job was recorded by the job
    itself (``record_failure``); what is news here is a job RQ found abandoned, whose worker died
    with its horse (``jobqueue.abandoned`` finds it at once): its row is handed back for RQ's retry,
    or failed once its retries are spent."""
    if not issubclass(exc_type, AbandonedJobError) or not job.args:
        return
    record_horse_death(
        int(job.args[0]),
        job.id,
        "The worker running the export died",
        retrying=job.should_retry,
        attempt=attempt_of(job),
    )


def record_failure(export: Export, job_id: str, exc: BaseException) -> None:
    temporary = isinstance(exc, TEMPORARY_ERRORS)
    current = get_current_job()
    if current is not None and not temporary:
        # RQ decides on a retry from this very Job object after we raise: bad data stays bad.
        current.retries_left = 0
    retrying = temporary and current is not None and current.should_retry
    error = f"{type(exc).__name__}: {exc}"
    if retrying:
        export.transition(ExportState.PENDING, expect_job_id=job_id, error=f"{error} (will retry)", heartbeat_on=None)
    else:
        export.transition(ExportState.FAILED, expect_job_id=job_id, error=error, finished_on=timezone.now())
    logger.warning("export %s failed (%s): %s", export.pk, "retrying" if retrying else "final", error)
    metrics.export_failed(export.format, type(exc).__name__, retrying)
