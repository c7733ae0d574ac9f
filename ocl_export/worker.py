"""The RQ worker class the export workers run (``RQ["WORKER_CLASS"]`` in the settings).

It is rq's forking worker with two additions. Every log line written while a job runs, by the
worker about it or by the work horse running it, carries the job id and the export id
(``ocl_export.logs``). And each work horse writes its metrics under its worker's name. A horse is forked per job, so under its own pid every job would leave a new set of
metric files behind in ``PROMETHEUS_MULTIPROC_DIR`` (thousands a day); a worker's horses run one
at a time, so they can share one.
"""

from __future__ import annotations

from rq import Queue
from rq.job import Job
from rq.worker import Worker

from . import logs, metrics


class ExportWorker(Worker):
    def execute_job(self, job: Job, queue: Queue) -> None:
        token = logs.running_job.set(logs.job_fields(job))  # the horse forks with it set
        try:
            super().execute_job(job, queue)
        finally:
            logs.running_job.reset(token)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        metrics.name_process(f"rq-{self.name}")
        super().main_work_horse(job, queue)
