"""What a scrape of /metrics reads: the counters every process wrote, and the state of right now.

Counters and histograms come from ``observability.metrics`` (added up over all processes when
``PROMETHEUS_MULTIPROC_DIR`` is set). Gauges of the moment are read at scrape time instead of
being kept by some process: exports by state and format (one grouped query on the export
table), and the queue's depth, running jobs and the age of its oldest waiting job (Redis). A
dependency that fails leaves its gauges out and counts in ``ocl_scrape_errors``; the scrape
still answers.

A dependency that hangs must not hold the scrape either (nor the gunicorn thread answering it):
Redis calls time out after ``REDIS_SOCKET_TIMEOUT``, and on PostgreSQL the export count runs
under a ``statement_timeout`` of ``DATABASE_TIMEOUT`` seconds, so a locked export table (a
migration, a stray ``LOCK TABLE``) or an overloaded server costs the scrape that long, as a slow
dependency costs /readyz ``READYZ_TIMEOUT``, well within Prometheus' 10 s scrape timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from rq.job import Job

from jobqueue.queue import connection, work_queue
from observability.metrics import multiprocess_dir
from ocl_export.models import Export, ExportFormat, ExportState

logger = logging.getLogger(__name__)

# Seconds the export count may take (waiting for a lock included) before PostgreSQL cancels it.
DATABASE_TIMEOUT = 2


@contextmanager
def statement_timeout(seconds: float) -> Iterator[None]:
    """A transaction whose statements PostgreSQL cancels after ``seconds`` (an OperationalError).

    SQLite (the embedded mode) has no such bound; it is one local file, with its own busy timeout.
    """
    if db_connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            (previous,) = cursor.fetchone()
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{round(seconds * 1000)}ms"])
        yield
        # A local setting (SET LOCAL) lasts to the end of the transaction, which a released savepoint
        # is not: inside an outer transaction (ATOMIC_REQUESTS, a test's) the bound would outlive
        # this block. (A cancelled statement rolls the savepoint back, and the setting with it.)
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])


def export_gauges() -> Iterator[Metric]:
    family = GaugeMetricFamily("ocl_exports", "Export rows, by state and format.", labels=["state", "format"])
    counts = {(state, fmt): 0 for state in ExportState.values for fmt in ExportFormat.values}
    with statement_timeout(DATABASE_TIMEOUT):
        rows = list(Export.objects.values("state", "format").annotate(n=Count("id")).order_by())
    for row in rows:
        counts[(row["state"], row["format"])] = row["n"]
    for (state, fmt), n in sorted(counts.items()):
        family.add_metric([state, fmt], n)
    yield family


def queue_gauges() -> Iterator[Metric]:
    queue = work_queue()
    depth = queue.count
    oldest_age = 0.0
    for job_id in queue.get_job_ids(0, 10):  # the head of the queue; a few in case one just left
        job = Job.fetch(job_id, connection=connection())
        if job.enqueued_at is not None:
            enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=UTC)
            oldest_age = max(0.0, (datetime.now(UTC) - enqueued).total_seconds())
            break
    running = queue.started_job_registry.count
    yield GaugeMetricFamily("ocl_export_queue_depth", "Export jobs waiting in the queue.", value=depth)
    yield GaugeMetricFamily(
        "ocl_export_queue_oldest_age_seconds", "Age of the oldest job waiting in the queue (0: none).", value=oldest_age
    )
    yield GaugeMetricFamily("ocl_export_jobs_running", "Export jobs a worker is running.", value=running)


class MomentCollector:
    """The gauges read at scrape time."""

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "ocl_scrape_errors", "Sources this scrape could not read (their gauges are missing).", labels=["source"]
        )
        for source, gauges in (("database", export_gauges), ("redis", queue_gauges)):
            try:
                yield from list(gauges())
                errors.add_metric([source], 0)
            except Exception as exc:
                logger.warning("metrics: could not read %s: %s", source, exc)
                errors.add_metric([source], 1)
        yield errors


class OwnProcessCollector:
    """Without a multiprocess directory: this process's own metrics (and its CPU and memory)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition() -> bytes:
    """The Prometheus text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(OwnProcessCollector())  # type: ignore[arg-type]
    registry.register(MomentCollector())  # type: ignore[arg-type]
    return generate_latest(registry)
