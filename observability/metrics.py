"""The counters and histograms the service keeps for Prometheus, and the one-line calls that feed them.

Views, jobs, the Location tokens and the reaper report outcomes here; nothing here decides
anything. ``operations`` (the app above) serves them at ``/metrics``, together with what is read
at scrape time (exports by state, queue depth).

With ``PROMETHEUS_MULTIPROC_DIR`` set, every process (each gunicorn worker, each RQ work horse,
the reaper) writes its values to small memory-mapped files in that directory and a scrape adds
them up, so two gunicorn workers and the worker machines behind one directory report one total.
Each process's files are named after the host and the process, so containers sharing a volume
never write each other's files (their process ids repeat). Short-lived processes that run one
after another under a fixed name reuse one file instead of leaving one each: every work horse
of an RQ worker writes as that worker (:func:`name_process`, see ``jobqueue.worker``), and the
``reap_exports`` command as the reaper. Without the directory, each process counts alone.

Every metric has labels: a labelled child is created on first use, so a process that reports
nothing (``migrate``, a shell) leaves no file behind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram, values

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
HOST = socket.gethostname()
# prometheus_client asks for the identity on every value it changes (to notice a fork), so it is
# kept ready for the pid it was made in: a fork (a new pid) falls back to ``host_pid``.
_identity: dict[str, object] = {"pid": None, "identity": ""}


def process_identity(pid: int | None = None) -> str:
    """``host_pid``, or ``host_name`` in a process that took a fixed name (and has not forked since)."""
    if pid is not None:
        return f"{HOST}_{pid}"
    own = os.getpid()
    if _identity["pid"] != own:
        _identity.update(pid=own, identity=f"{HOST}_{own}")
    return str(_identity["identity"])


def name_process(name: str) -> None:
    """Write this process's values under ``name`` from now on (a forked child goes back to its pid).

    Only for processes that never run at the same time under the same name: they share one file.
    """
    _identity.update(pid=os.getpid(), identity=f"{HOST}_{name}")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


if multiprocess_dir():
    # prometheus_client picks its value class when it is imported; the metrics below are created
    # after this line, so they write under our process identity rather than the bare pid.
    values.ValueClass = values.MultiProcessValue(process_identity)


@contextmanager
def kept_in_process() -> Iterator[None]:
    """Metrics that other libraries create inside this block count in this process's memory only.

    A library metric without labels (django-rq's ``RQCollector`` makes a Summary when its module is
    imported) would otherwise write a file into the multiprocess directory in every process that
    merely imports it, ``manage.py`` commands included, and its figures would be summed into
    ``/metrics`` beside ours. Ours are created outside this block and keep writing their files.
    """
    shared = values.ValueClass
    values.ValueClass = values.MutexValue
    try:
        yield
    finally:
        values.ValueClass = shared


# Request latencies of a JSON API: most answers take milliseconds, a busy one a second or more.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
EXPORT_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
EXPORT_BYTES_BUCKETS = tuple(float(1 << shift) for shift in range(16, 36, 2))  # 64 KiB .. 16 GiB
ITEMS_PER_SECOND_BUCKETS = (100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 150_000, 250_000, 500_000)

REQUESTS = Counter(
    "ocl_http_requests",
    "HTTP requests answered, by URL pattern name, method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "ocl_http_request_duration_seconds",
    "Time to the response's headers (a streamed body is not included), by URL pattern name and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
EXPORTS_FINISHED = Counter(
    "ocl_exports_finished", "Export attempts that ended, by format and outcome.", ["format", "outcome"]
)
EXPORT_SECONDS = Histogram(
    "ocl_export_duration_seconds",
    "Time from a worker's claim to the published archive.",
    ["format"],
    buckets=EXPORT_SECONDS_BUCKETS,
)
EXPORT_BYTES = Histogram(
    "ocl_export_size_bytes", "Size of published archives.", ["format"], buckets=EXPORT_BYTES_BUCKETS
)
EXPORT_ITEMS_PER_SECOND = Histogram(
    "ocl_export_items_per_second",
    "Concepts and mappings per second of published exports.",
    ["format"],
    buckets=ITEMS_PER_SECOND_BUCKETS,
)
EXPORT_FAILURES = Counter(
    "ocl_export_failures",
    "Export failures, by reason (an exception class, worker_lost, queue_unavailable) and whether RQ retries.",
    ["reason", "retrying"],
)
LOCATIONS = Counter(
    "ocl_location_redemptions",
    "Download Location redemptions: redeemed, or refused as unknown (404) or used/expired (410).",
    ["result"],
)
REAPER_ACTIONS = Counter(
    "ocl_reaper_actions",
    "What reap_exports did: exports failed, uploads aborted, redeemed Locations forgotten.",
    ["action"],
)
CLIENTS_DROPPED = Counter(
    "ocl_clients_dropped",
    "Connections ended because the client kept a gunicorn thread waiting past GUNICORN_CLIENT_TIMEOUT.",
    ["reason"],
)
RATE_LIMIT_CHECKS = Counter(
    "ocl_rate_limit_checks",
    "Requests checked against a rate limit: allowed, refused (429), or unchecked (Redis did not answer).",
    ["outcome"],
)


# --- the calls the rest of the service makes ------------------------------------------------


def request_answered(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)


def export_completed(export: Any, items: int | None) -> None:
    """A completed export row (its format, size, started_on and finished_on)."""
    fmt, size = export.format, export.size
    seconds = (export.finished_on - export.started_on).total_seconds()
    EXPORTS_FINISHED.labels(fmt, "completed").inc()
    EXPORT_SECONDS.labels(fmt).observe(seconds)
    if size is not None:
        EXPORT_BYTES.labels(fmt).observe(size)
    if items and seconds > 0:
        EXPORT_ITEMS_PER_SECOND.labels(fmt).observe(items / seconds)


def export_failed(fmt: str, reason: str, retrying: bool = False) -> None:
    EXPORTS_FINISHED.labels(fmt, "retrying" if retrying else "failed").inc()
    EXPORT_FAILURES.labels(reason, "true" if retrying else "false").inc()


def export_cancelled(fmt: str) -> None:
    EXPORTS_FINISHED.labels(fmt, "cancelled").inc()


def client_dropped(reason: str) -> None:
    """``stopped_reading`` (took none of an answer), ``stopped_sending`` (sent none of a request),
    ``slow_head`` (a request's head took longer than the deadline in all)."""
    CLIENTS_DROPPED.labels(reason).inc()


def rate_limit_checked(outcome: str) -> None:
    RATE_LIMIT_CHECKS.labels(outcome).inc()


def reaper_swept(**actions: int) -> None:
    for action, count in actions.items():
        if count:
            REAPER_ACTIONS.labels(action).inc(count)


F = TypeVar("F", bound=Callable[..., Any])
REFUSALS = {404: "refused_unknown", 410: "refused_used_or_expired"}


def counts_redemptions(redeem: F) -> F:
    """Decorates the function that redeems a Location: a return is a redemption, a 404 or 410 a
    refusal, by its status."""

    @wraps(redeem)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = redeem(*args, **kwargs)
        except Exception as exc:
            status = getattr(exc, "status_code", None)  # an API error: a refusal
            if status is not None:
                LOCATIONS.labels(REFUSALS.get(status, f"refused_{status}")).inc()
            raise
        LOCATIONS.labels("redeemed").inc()
        return result

    return counted  # type: ignore[return-value]
