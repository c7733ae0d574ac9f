"""Gunicorn settings for the OCL export API, read from the environment.

gthread workers: a ``limit=0`` read streams a whole repository version (a million items for CIEL)
and can take minutes. A sync worker would be killed by ``timeout`` mid-stream, because it cannot
heartbeat while a request runs. A gthread worker keeps heartbeating from its main thread while
request threads stream, so ``timeout`` only catches a worker that is truly stuck, and one slow
stream occupies one thread rather than a whole process.

Each request thread may hold a database connection (DATABASE_CONN_MAX_AGE keeps it open), so a
machine opens up to WEB_CONCURRENCY x GUNICORN_THREADS connections to PostgreSQL: size
``max_connections`` (or a pooler) for the sum over all web machines plus the workers.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").split(",")
# /metrics answers only on this listener when it is set (see operations/conf.py): bind it too.
metrics_bind = os.environ.get("METRICS_BIND", "").strip()
if metrics_bind and metrics_bind not in bind:
    bind.append(metrics_bind)
# One process per core, four threads each. Most answers come from the process's memory
# (read_cache), so a request is CPU work under its process's GIL: threads of one process take
# turns, processes do not, and more processes than cores only take turns on the cores instead.
# Measured with bench/bench_requests.py on 2 cores at 32 connections (README, "How a request
# stays cheap"): 2 x 4 answered at p99 29-48 ms where 4 x 4 took 45-65 ms and 2 x 8 44-49 ms.
workers = _int("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count()))
# gthread, except that a worker holding its share of connections lets another accept the next
# (serving/balanced_worker.py: opened together, a client's connections often all went to one),
# and that a client that stops reading the answer (or sending the request) for
# GUNICORN_CLIENT_TIMEOUT seconds (60) is dropped instead of holding a thread for good
# (serving/web_worker.py).
worker_class = "serving.web_worker.WebWorker"
threads = _int("GUNICORN_THREADS", 4)

# Seconds a worker may go without heartbeating before the arbiter kills it (not a request limit
# for gthread; see above).
timeout = _int("GUNICORN_TIMEOUT", 120)
# On restart or shutdown, how long in-flight requests (long streams) get to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 300)
# Behind a load balancer, keep connections open a little longer than its idle timeout expects.
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Recycling workers now and then caps slow leaks; jitter keeps them from restarting together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max(0, max_requests // 10)

# The heartbeat file on a RAM disk: in containers /tmp may be an overlay that stalls on fsync,
# which would look like a stuck worker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Gunicorn's control socket (gunicornc) defaults to one path per user in $HOME, so two servers on a
# machine would take each other's; off unless a path is given.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True

accesslog = "-"
errorlog = "-"
# gunicorn's logger, except that a file sent with sendfile() counts its bytes (it logged 0).
logger_class = "serving.access_log.AccessLogger"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
if os.environ.get("LOG_FORMAT") == "json":
    # gunicorn's own lines, access lines included, as JSON objects like the application's
    # (observability/logs.py takes the access line's fields from its atoms, not from a format string).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "observability.logs.JsonFormatter"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["stdout"], "level": loglevel.upper()},
        "loggers": {
            "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False},
            "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }
# The app is imported in each worker (not preloaded): DB connections and Redis sockets must not be
# shared across fork.
preload_app = False


def child_exit(server: object, worker: object) -> None:
    """A web worker is gone: with PROMETHEUS_MULTIPROC_DIR, drop its live gauges (its counters stay,
    they are part of the totals)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Imported here, not at the top: the arbiter never imports the application (preload_app
        # is off), and only this hook needs these.
        from prometheus_client import multiprocess

        from observability.metrics import process_identity

        multiprocess.mark_process_dead(process_identity(worker.pid))  # type: ignore[attr-defined]
