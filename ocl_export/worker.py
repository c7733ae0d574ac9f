"""The worker class the service's RQ workers run (``RQ["WORKER_CLASS"]`` in the settings): the
shared worker of ``jobqueue.worker``, told what a dead work horse means to an export row.

When a horse dies, however it died, the export row is handed back at once (pending, for RQ's retry)
or failed right then, instead of after the heartbeat goes stale.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from rq.job import Job

from jobqueue.worker import ServiceWorker

from .jobs import attempt_of, record_horse_death
from .queue import JOB_FUNCTION

logger = logging.getLogger(__name__)


class ExportWorker(ServiceWorker):
    def horse_died(self, job: Job, how: str) -> None:
        if job.func_name != JOB_FUNCTION or not job.args:
            return
        try:
            record_horse_death(
                int(job.args[0]), job.id, f"The work horse died ({how})", job.should_retry, attempt_of(job)
            )
        except DatabaseError:
            logger.warning("export job %s: could not record the death of its work horse", job.id, exc_info=True)
