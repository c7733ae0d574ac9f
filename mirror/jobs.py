"""The periodic RQ job of a subscription, scheduled by RQ itself (workers run --with-scheduler).

Each run schedules the next one ``interval`` seconds later, whatever its outcome, so a failed run
is simply tried again at the next tick; ``subscribe`` schedules the first. At most one future run
per subscription waits in RQ's scheduled registry: scheduling looks there (and in the queue)
before adding one. The jobs go to the export queue, which every worker already listens on.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from rq.registry import ScheduledJobRegistry

from jobqueue.queue import FAILURE_TTL, RESULT_TTL, work_queue

from .models import Subscription
from .sync import sync

logger = logging.getLogger(__name__)

JOB_FUNCTION = "mirror.jobs.run_subscription"


def job_prefix(subscription_id: int) -> str:
    return f"mirror-sync-{subscription_id}-"


def run_subscription(subscription_id: int) -> dict:
    """The job: one sync of the subscription, then the next run on the schedule."""
    subscription = Subscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        return {"subscription": subscription_id, "error": "the subscription no longer exists"}
    try:
        report = sync(subscription)
    finally:
        schedule(subscription)
    return report.as_dict()


def waiting_jobs(subscription_id: int) -> list[str]:
    """Ids of this subscription's runs scheduled or queued, not yet started."""
    queue = work_queue()
    prefix = job_prefix(subscription_id)
    ids = ScheduledJobRegistry(queue=queue).get_job_ids() + queue.get_job_ids()
    return [job_id for job_id in ids if job_id.startswith(prefix)]


def schedule(subscription: Subscription, delay: int | None = None) -> str | None:
    """Put the subscription's next run on RQ's schedule, unless one is waiting; its job id, or None."""
    if waiting_jobs(subscription.pk):
        return None
    delay = subscription.interval if delay is None else delay
    job_id = f"{job_prefix(subscription.pk)}{time.time_ns()}"
    work_queue().enqueue_in(
        timedelta(seconds=delay),
        JOB_FUNCTION,
        subscription.pk,
        job_id=job_id,
        description=f"sync {subscription}",
        job_timeout=settings.EXPORT_JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
    )
    logger.info("%s: next run in %s s (job %s)", subscription, delay, job_id)
    return job_id


def unschedule(subscription_id: int) -> int:
    """Cancel the subscription's waiting runs; how many there were."""
    queue = work_queue()
    found = waiting_jobs(subscription_id)
    for job_id in found:
        job = queue.fetch_job(job_id)
        if job is not None:
            job.delete()
    return len(found)
