"""Jobs whose worker died, handed back to RQ at once instead of when their lease runs out.

A worker that dies (SIGKILL, the OOM killer, a container gone) cannot say so, and its work horse
dies with it (``jobqueue.worker``). RQ finds such a job on its own only when the job's entry in the
StartedJobRegistry expires (the worker's monitoring interval plus a minute) and a worker's
maintenance round, which runs only between jobs, cleans the registry: then the job is retried if
it has retries left (its ``Retry``), or failed, and its failure callback is told
(``AbandonedJobError``). That is the right outcome, reached too late: meanwhile the job's app may
have given up on it.

Here the same outcome is reached as soon as the death shows. A running job's execution names its
worker; the worker is dead when its key in Redis has expired (RQ's own sign, on any machine), or
when it ran on this machine under a pid that no longer exists (seen at once: a restarted worker,
the reaper and the web processes on the same host look). Its executions are then marked expired
and RQ's own cleanup runs on exactly them: the retry, the failure and the callbacks are RQ's.

Who looks: every worker at start and between jobs (``jobqueue.worker``), the reaper's sweep, and
a look at an export whose heartbeat stopped (``ocl_export.standing``).
"""

from __future__ import annotations

import logging
import os
import socket
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.executions import Execution
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty
from rq.utils import as_text, parse_composite_key
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

logger = logging.getLogger(__name__)

# Two rescuers at once (a worker and the reaper) must not both retry a job (RQ would queue it
# twice and count two retries): one at a time per queue, for at most this many seconds.
LOCK_SECONDS = 30
WAIT_FOR_OTHER_SECONDS = 5
LOCK_KEY = "ocl:rescue-lock:{0}"
EXPIRED = 0  # the StartedJobRegistry score that marks an execution as over


def process_exists(pid: int) -> bool:
    """A running process (a zombie is not: a killed process whose parent died with it may wait
    long for an init that reaps slowly, still answering signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def ran_here_and_is_gone(hostname: str | None, pid: int) -> bool:
    """A process that registered from this machine (same hostname) under a pid that is gone."""
    return hostname == socket.gethostname() and pid > 0 and not process_exists(pid)


def worker_is_dead(connection: Redis, name: str) -> bool:
    """The worker called ``name`` no longer runs: its key expired, or it ran here and is gone. A
    worker that stopped cleanly (its death registered) handed its job back itself."""
    if not name:
        return False
    info = {as_text(k): as_text(v) for k, v in connection.hgetall(Worker.redis_worker_namespace_prefix + name).items()}
    if not info:
        return True
    if info.get("death"):
        return False
    return ran_here_and_is_gone(info.get("hostname"), int(info.get("pid") or 0))


def rescue_jobs_of_dead_workers(queue: Queue) -> list[str]:
    """Hand every started job of ``queue`` whose worker is dead to RQ's abandoned-job handling now
    (retried while it has retries left, else failed; its failure callback told). Returns their ids.
    Redis errors are logged: the next look tries again."""
    connection = queue.connection
    lock = LOCK_KEY.format(queue.name)
    try:
        if not connection.set(lock, os.getpid(), nx=True, ex=LOCK_SECONDS):
            # Another process is at it: wait for its outcome (milliseconds), so that a caller who
            # then reads its row sees the job handed back rather than concluding it is dead.
            deadline = time.monotonic() + WAIT_FOR_OTHER_SECONDS
            while connection.exists(lock) and time.monotonic() < deadline:
                time.sleep(0.05)
            return []
        try:
            return _rescue(queue)
        finally:
            connection.delete(lock)
    except RedisError as exc:
        logger.warning("could not look for jobs of dead workers on %s: %s", queue.name, exc)
        return []


def _rescue(queue: Queue) -> list[str]:
    connection = queue.connection
    # The callbacks run here, in whatever process looks (a web thread among them): a timer, not
    # SIGALRM, bounds them.
    registry = StartedJobRegistry(queue=queue, death_penalty_class=TimerDeathPenalty)
    dead: dict[str, str] = {}
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        try:
            execution = Execution.fetch(execution_id, job_id, connection)
        except ValueError:
            continue  # its hash expired: RQ's own cleanup takes it when its score passes
        if worker_is_dead(connection, execution.worker_name):
            dead[execution.composite_key] = execution.worker_name
    if not dead:
        return []
    connection.zadd(registry.key, dict.fromkeys(dead, EXPIRED), xx=True)
    registry.cleanup(timestamp=EXPIRED)
    for worker_name in set(dead.values()):
        # No longer listed among the live workers (its hash expires on its own).
        worker_key = Worker.redis_worker_namespace_prefix + worker_name
        connection.srem(REDIS_WORKER_KEYS, worker_key)
        connection.srem(WORKERS_BY_QUEUE_KEY % queue.name, worker_key)
    jobs = [parse_composite_key(key)[0] for key in dead]
    logger.warning(
        "jobs %s of dead workers %s handed back to RQ", ", ".join(jobs), ", ".join(sorted(set(dead.values())))
    )
    return jobs
