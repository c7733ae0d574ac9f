"""The RQ worker class under the service's workers: rq's forking worker, made to leave nothing
running behind it, to recover from a dead work horse at once, and to tell what it does. The class
the workers run (``RQ["WORKER_CLASS"]`` in the settings; ``deploy/worker.sh`` starts it) is
``ocl_export.worker.ExportWorker``, this one told what a dead horse means to an export row.

Every log line written while a job runs, by the worker about it or by the work horse running it,
carries the job id and the export id (``observability.logs``). Each work horse writes its metrics under
its worker's name: a horse is forked per job, so under its own pid every job would leave a new set
of metric files behind in ``PROMETHEUS_MULTIPROC_DIR`` (thousands a day); a worker's horses run one
at a time, so they can share one.

RQ forks a work horse per job and puts it in a process group of its own, so a supervisor that
stops the worker's group, or kills the worker, used to leave the horse running: still exporting,
still heartbeating, holding a database backend. Here:

- every child of the worker (the horse, the scheduler) is killed by the kernel when the worker
  dies (Linux ``PR_SET_PDEATHSIG``), and the worker itself stops when its own parent dies
  (``deploy/worker.sh``, which restarts it);
- SIGTERM/SIGINT stop the job in hand at once instead of waiting for it to end (an export may
  take hours); the job is retried, by this worker once it is back or by another;
- when a horse dies, however it died, RQ's parent knows at once: the export row is handed back
  (pending, for RQ's retry) or failed right then, instead of after the heartbeat goes stale;
- a Redis outage while a job runs does not end the worker (the horse goes on; the job's Redis
  heartbeat resumes when Redis does);
- a job whose worker died is handed back to RQ (retried, or failed once its retries are spent) as
  soon as any worker, restarted or not, looks between jobs (``jobqueue.abandoned``);
- the scheduler (delayed retries need it) is looked after every MAINTENANCE_INTERVAL seconds
  instead of RQ's ten minutes: restarted when an outage ended it, and taken over at once from a
  dead worker on this machine instead of after its lock expires.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from typing import Any

import redis
from django.db import connection
from rq import Queue, Worker
from rq.job import Job
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import now, utcparse

from observability import logs, metrics

from .abandoned import ran_here_and_is_gone, rescue_jobs_of_dead_workers

logger = logging.getLogger(__name__)

# Seconds between RQ's maintenance rounds (registry cleaning, restarting a dead scheduler, taking
# over the scheduler lock of a worker that died). RQ's default is 600.
MAINTENANCE_INTERVAL = 15
PR_SET_PDEATHSIG = 1
# Seconds without a beat after which a scheduler holding the lock counts as dead (it beats every
# second; its lock would otherwise stand for a minute).
SCHEDULER_SILENCE = 15


def die_with_parent(sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux; a no-op elsewhere).
    Exits at once when the parent is already gone (it died between the fork and this call)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        logger.warning("could not ask to die with the parent process", exc_info=True)
        return
    if os.getppid() != parent:
        os._exit(1)


_forking_pid = 0


def _note_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _child_dies_with_worker() -> None:
    if _forking_pid and os.getppid() != _forking_pid:
        os._exit(1)
    die_with_parent(signal.SIGKILL)


_fork_hooks_installed = False


def install_fork_hooks() -> None:
    global _fork_hooks_installed
    if not _fork_hooks_installed:
        os.register_at_fork(before=_note_forking_pid, after_in_child=_child_dies_with_worker)
        _fork_hooks_installed = True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def scheduler_is_dead(info: dict[str, str]) -> bool:
    """From a scheduler's hash in Redis (empty: it has not registered yet, so it may be starting)."""
    if not info:
        return False
    if ran_here_and_is_gone(info.get("hostname"), int(info.get("pid") or 0)):
        return True
    beat = info.get("last_heartbeat")
    return bool(beat) and (now() - utcparse(beat)).total_seconds() > SCHEDULER_SILENCE


class ServiceWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)

    def execute_job(self, job: Job, queue: Queue) -> None:
        token = logs.running_job.set(logs.job_fields(job))  # the horse forks with it set
        try:
            super().execute_job(job, queue)
        finally:
            logs.running_job.reset(token)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        metrics.name_process(f"rq-{self.name}")
        super().main_work_horse(job, queue)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        install_fork_hooks()
        if os.getppid() != 1:
            die_with_parent(signal.SIGTERM)  # a supervisor that dies takes its worker along
        return super().work(*args, **kwargs)

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        self.release_dead_scheduler_locks()
        super()._start_scheduler(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        """Also at start: a worker restarted after a crash hands its predecessor's job back at once."""
        self.release_dead_scheduler_locks()
        self.rescue_jobs_of_dead_workers()
        super().run_maintenance_tasks()

    def rescue_jobs_of_dead_workers(self) -> None:
        try:
            for queue in self.queues:
                rescue_jobs_of_dead_workers(queue)
        finally:
            # The failure callbacks may have used the database; the next horse forks from here.
            connection.close()

    def release_dead_scheduler_locks(self) -> None:
        """A killed worker's scheduler lock outlives it by a minute (its TTL), during which no
        scheduler runs and delayed retries wait. A lock is released at once when its holder is
        dead: it ran on this machine under a pid that no longer exists, or it has not beaten for
        SCHEDULER_SILENCE seconds (it beats every second), so a restarted worker takes it over."""
        try:
            for queue in self.queues:
                lock = RQScheduler.get_locking_key(queue.name)
                holder = self.connection.get(lock)
                if holder is None:
                    continue
                holder = _text(holder)
                info = {_text(k): _text(v) for k, v in self.connection.hgetall(SCHEDULER_KEY_TEMPLATE % holder).items()}
                if scheduler_is_dead(info) and release_lock(self.connection, lock, holder):
                    self.log.info("Worker %s: released the scheduler lock of dead scheduler %s", self.name, holder)
        except redis.RedisError as exc:
            self.log.warning("Worker %s: could not check the scheduler lock: %s", self.name, exc)

    def request_stop(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT: stop the job in hand now (it is retried), then stop."""
        if self.horse_pid:
            self.log.warning(
                "Worker %s: stopping; killing work horse %s (its job is retried)", self.name, self.horse_pid
            )
            self.kill_horse()
        super().request_stop(signum, frame)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """RQ calls this in the worker when a horse died without recording an outcome (killed by a
        signal, by the OOM killer, by a stop request): the job's app is told at once."""
        how = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"status {ret_val}"
        try:
            self.horse_died(job, how)
        finally:
            # The next horse is forked from this process: it must not inherit an open connection.
            connection.close()

    def horse_died(self, job: Job, how: str) -> None:
        """What the death of ``job``'s horse means to the app whose job it was (nothing here)."""

    def maintain_heartbeats(self, job: Job, execution: Any) -> None:
        try:
            super().maintain_heartbeats(job, execution)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The horse works on without Redis; the export row's heartbeat is in the database.
            self.log.warning("Worker %s: Redis unreachable while job %s runs: %s", self.name, job.id, exc)
