"""Putting an export job on the work queue (the generic RQ seam is ``jobqueue.queue``).

A dead Redis answers POST with a 503 and Retry-After at once (``jobqueue.queue`` keeps short
socket timeouts and no client-side retries).
"""

from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from redis.exceptions import RedisError
from rq import Callback, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job

from foundation.errors import ServiceUnavailable
from jobqueue.queue import FAILURE_TTL, RESULT_TTL, connection, is_dead, job_status, redis_location, work_queue

logger = logging.getLogger(__name__)

# Referenced by name so this module does not import the jobs (imports flow jobs -> queue).
JOB_FUNCTION = "ocl_export.jobs.run_export"
FAILURE_CALLBACK = "ocl_export.jobs.on_job_failure"
RETRY_AFTER_SECONDS = 30


def enqueue_export_job(export_id: int, job_id: str) -> None:
    """Queue ``run_export(export_id)`` under ``job_id``; a second call while the first job is still
    to run (queued, scheduled, started) is a no-op.

    A job of that id which has already ended is not "queued": RQ keeps finished jobs for a day, and
    an id can come back (only by accident, with random job ids). Its remains are dropped and the
    job is queued afresh, so the row is never left waiting for a job that will not run.
    """
    try:
        try:
            _enqueue(export_id, job_id)
        except DuplicateJobError:
            if not is_dead(job_status(job_id)):
                logger.info("export job %s was already queued", job_id)
                return
            logger.warning("export job %s had already ended; queueing it again", job_id)
            with contextlib.suppress(NoSuchJobError):
                Job.fetch(job_id, connection=connection()).delete()
            _enqueue(export_id, job_id)
    except RedisError as exc:
        logger.warning("could not queue export job %s: %s", job_id, exc)
        raise ServiceUnavailable(retry_after=RETRY_AFTER_SECONDS) from exc


def _enqueue(export_id: int, job_id: str) -> None:
    # Temporary failures (storage, network, a killed work horse) are retried after these many
    # seconds. Retries with a delay go through RQ's scheduler: run workers with --with-scheduler.
    intervals = list(settings.EXPORT_RETRY_DELAYS)
    # A job whose worker died is retried by the same Retry (jobqueue.abandoned finds it at once);
    # the failure callback tells its row.
    work_queue().enqueue(
        JOB_FUNCTION,
        export_id,
        job_id=job_id,
        unique=True,
        description=f"export {export_id}",
        job_timeout=settings.EXPORT_JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        on_failure=Callback(FAILURE_CALLBACK),
    )
    # Said every time: a manage.py command run outside `make run` queues into whatever REDIS_URL
    # says (by default db 0 on 127.0.0.1:6379), and nobody should have to guess which.
    logger.info("export %s: job %s queued on %s, queue %r", export_id, job_id, redis_location(), settings.EXPORT_QUEUE)
