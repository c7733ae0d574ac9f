"""OCL checksums of an import's new rows, filled in by an RQ job after the import commits.

``ocldev`` computes them in Python at about 230 us a CIEL concept and 60 us a mapping: inline, a
first import of 100k items fell from ~14,000 to ~5,000 items/s, and no inline road on two cores
reaches the import's 20,000. So by default (``CHECKSUMS_AT_IMPORT=deferred``) the importer writes
its rows without them and, once its transaction has committed, queues one job for the repository
that computes and stores them in batches (``checksum_store.backfill``, one transaction a batch).

The job is safe to run twice (it only ever reads rows that still have none) and safe to lose (a
worker that dies leaves whole batches stored; the next run, or ``manage.py backfill_checksums``,
continues). Its id is the repository's, so imports that follow each other queue one job between
them. Until it has run nothing answers wrongly: every reader computes a missing pair on the fly
(``checksum_store``), and ``?checksums=true`` on a version says how many are ``checksums_pending``.
``CHECKSUMS_AT_IMPORT=inline`` keeps the old road: checksums written with the rows, no job.
"""

from __future__ import annotations

import contextlib
import logging
import time
from functools import partial

from django.conf import settings
from django.db import connection as database
from django.db import transaction
from redis.exceptions import RedisError
from rq import Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from jobqueue.queue import FAILURE_TTL, RESULT_TTL, connection, is_dead, job_status, work_queue
from repos.checksum_store import backfill
from repos.representation.items import KINDS

INLINE = "inline"
DEFERRED = "deferred"
JOB_FUNCTION = "repos.checksum_jobs.fill_checksums"
# A worker lost mid-job (the job is then failed, not finished) is retried after these many seconds.
RETRY_DELAYS = [10, 60, 300]

# A job that stored this many rows' checksums VACUUMs the item tables once it is done.
VACUUM_AFTER_ROWS = 10_000

logger = logging.getLogger(__name__)


def inline() -> bool:
    """Whether an import computes its rows' checksums itself (``CHECKSUMS_AT_IMPORT=inline``)."""
    return settings.CHECKSUMS_AT_IMPORT == INLINE


def job_ids(repository_id: int) -> tuple[str, str]:
    """The repository's job, and the one that follows it when an import commits while it runs
    (a running job may already have passed the new rows' ids)."""
    return f"checksums-{repository_id}", f"checksums-{repository_id}-again"


def fill_after_commit(repository_id: int) -> None:
    """Called by the importer inside its transaction: on the deferred road, queue the job once the
    rows are committed (and so visible to the worker); a rolled-back import queues nothing."""
    if not inline():
        transaction.on_commit(partial(queue_fill, repository_id), robust=True)


def queue_fill(repository_id: int) -> str | None:
    """Queue :func:`fill_checksums` for the repository unless a job of it is already waiting;
    returns the id of the job that will run, None when Redis could not be told (the rows then
    wait for the next import's job or ``manage.py backfill_checksums``; answers stay right)."""
    try:
        for job_id in job_ids(repository_id):
            try:
                _enqueue(repository_id, job_id)
                return job_id
            except DuplicateJobError:
                status = job_status(job_id)
                if status == JobStatus.STARTED.value:
                    continue  # running: the follow-up id takes the new rows
                if not is_dead(status):
                    return job_id  # still to run: it will find the new rows too
                with contextlib.suppress(NoSuchJobError):
                    Job.fetch(job_id, connection=connection()).delete()
                _enqueue(repository_id, job_id)
                return job_id
    except RedisError as exc:
        logger.warning("could not queue the checksums job of repository %s: %s", repository_id, exc)
        return None
    logger.warning("checksums of repository %s: both its jobs are running; the later one finds the rows", repository_id)
    return None


def _enqueue(repository_id: int, job_id: str) -> None:
    work_queue().enqueue(
        JOB_FUNCTION,
        repository_id,
        job_id=job_id,
        unique=True,
        description=f"OCL checksums of repository {repository_id}",
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=Retry(max=len(RETRY_DELAYS), interval=RETRY_DELAYS),
    )


def fill_checksums(repository_id: int, batch_size: int | None = None) -> dict:
    """The job: store the checksums of every row a version of the repository holds that has none."""
    started = time.monotonic()
    done = backfill(batch_size or settings.IMPORT_BATCH_SIZE, repository_id=repository_id)
    if done >= VACUUM_AFTER_ROWS:
        tidy_item_tables()
    seconds = time.monotonic() - started
    logger.info("checksums of repository %s: %s rows in %.1f s", repository_id, done, seconds)
    return {"rows": done, "seconds": round(seconds, 3)}


def tidy_item_tables() -> None:
    """VACUUM (ANALYZE) the item tables: storing a checksum rewrites its row, so the job has just
    left a dead copy of every row an import wrote, and rows PostgreSQL cannot yet read from their
    indexes alone. Until autovacuum passes (a minute or more later) every read of those versions
    pays for both: a mirror's next release took 1.9 s as a delta instead of 1.1 s, its sha256
    proof twice as long. Outside a transaction only (a test's block leaves it to autovacuum)."""
    if database.vendor != "postgresql" or database.in_atomic_block:
        return
    with database.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(kind.table for kind in KINDS.values())}")
