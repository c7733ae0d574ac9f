"""The seam to RQ that several apps share: the Redis connection, the work queue, and asking Redis
how a job is doing (or telling a worker to stop one, or cancelling one). What a job does lives with its app; the
export feature queues its jobs in ``ocl_export.queue``, the mirror its runs in ``mirror.jobs``.

Requests must not hang on a dead Redis: connections use short socket timeouts and no client-side
retries, so POST answers 503 within ``REDIS_SOCKET_TIMEOUT`` instead of after redis-py's backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import django_rq
from django.conf import settings
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

logger = logging.getLogger(__name__)

# Kept a day for whoever inspects the queue; failures a week, with their tracebacks.
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600

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


def work_queue() -> Queue:
    """The queue every worker listens on (``EXPORT_QUEUE``): export jobs and subscription runs."""
    return django_rq.get_queue(settings.EXPORT_QUEUE, connection=connection())


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
        logger.warning("could not read job %s: %s", job_id, exc)
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
        logger.warning("could not stop job %s: %s", job_id, exc)
        return
    logger.warning("asked the worker of job %s to stop it", job_id)


# How long a cancel waits for the worker to kill a running job's horse (it takes milliseconds).
STOP_WAIT_SECONDS = 5.0


def cancel_job(job_id: str, wait: float = STOP_WAIT_SECONDS) -> bool:
    """Make sure ``job_id`` never runs (again): a queued, scheduled or deferred job is cancelled
    (RQ's cancel: out of the queue and its registries), a running one is stopped (RQ's stop-job
    command: its worker kills the horse and goes on to the next job). True once the job is known
    not to run any more; False when a running job had not stopped within ``wait`` seconds, or
    Redis did not answer."""
    try:
        job = Job.fetch(job_id, connection=connection())
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            send_stop_job_command(connection(), job_id)
            logger.warning("asked the worker of job %s to stop it", job_id)
            deadline = time.monotonic() + wait
            while job.get_status(refresh=True) == JobStatus.STARTED:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            return True
        if status not in DEAD_JOB_STATES:
            job.cancel()
        return True
    except (NoSuchJobError, InvalidJobOperation):
        return True  # gone, or ended meanwhile
    except RedisError as exc:
        logger.warning("could not cancel job %s: %s", job_id, exc)
        return False
