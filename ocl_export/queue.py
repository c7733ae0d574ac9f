"""The seam to RQ: put an export job on the queue, and ask Redis how a job is doing.

Requests must not hang on a dead Redis: connections use short socket timeouts and no client-side
retries, so POST answers 503 within ``REDIS_SOCKET_TIMEOUT`` instead of after redis-py's backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from urllib.parse import urlsplit

import django_rq
from django.conf import settings
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from foundation.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# Referenced by name so this module does not import the jobs (imports flow jobs -> queue).
JOB_FUNCTION = "ocl_export.jobs.run_export"
# Kept a day for whoever inspects the queue; failures a week, with their tracebacks.
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
RETRY_AFTER_SECONDS = 30

# RQ states in which a job will never run our function again.
DEAD_JOB_STATES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
MISSING = "missing"

_connections: dict[str, Redis] = {}
_connections_lock = threading.Lock()


def connection() -> Redis:
    """One pooled client per Redis URL (settings may change the URL, tests do)."""
    url = settings.REDIS_URL
    with _connections_lock:
        client = _connections.get(url)
        if client is None:
            timeout = settings.REDIS_SOCKET_TIMEOUT
            client = Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=RedisRetry(NoBackoff(), 0),
            )
            _connections[url] = client
    return client


def export_queue() -> Queue:
    return django_rq.get_queue(settings.EXPORT_QUEUE, connection=connection())


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
    export_queue().enqueue(
        JOB_FUNCTION,
        export_id,
        job_id=job_id,
        unique=True,
        description=f"export {export_id}",
        job_timeout=settings.EXPORT_JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        retry=Retry(max=len(intervals), interval=intervals),
    )
    # Said every time: a manage.py command run outside `make run` queues into whatever REDIS_URL
    # says (by default db 0 on 127.0.0.1:6379), and nobody should have to guess which.
    logger.info("export %s: job %s queued on %s, queue %r", export_id, job_id, redis_location(), settings.EXPORT_QUEUE)


def redis_location() -> str:
    """REDIS_URL without its password, for messages."""
    url = urlsplit(settings.REDIS_URL)
    host = url.hostname or url.path  # unix:///path/redis.sock has no host
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{host}{port}{url.path if url.hostname else ''}"


def job_status(job_id: str) -> str | None:
    """The RQ status of a job, :data:`MISSING` when Redis no longer knows it, None when Redis does not
    answer (then nobody can tell, and callers must not conclude the job is dead)."""
    try:
        job = Job.fetch(job_id, connection=connection())
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return MISSING
    except RedisError as exc:
        logger.warning("could not read export job %s: %s", job_id, exc)
        return None
    return str(status.value) if status is not None else MISSING


def is_dead(status: str | None) -> bool:
    return status == MISSING or status in DEAD_JOB_STATES


def stop_job(job_id: str) -> None:
    """Ask the worker running ``job_id`` to kill its work horse (RQ's stop-job command); nothing
    happens when no worker runs it, or when Redis does not answer."""
    try:
        send_stop_job_command(connection(), job_id)
    except (NoSuchJobError, InvalidJobOperation):
        return
    except RedisError as exc:
        logger.warning("could not stop export job %s: %s", job_id, exc)
        return
    logger.warning("asked the worker of export job %s to stop it", job_id)
