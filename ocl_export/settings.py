"""Settings for the OCL export service.

Every value comes from the environment through the small typed readers below, which refuse
nonsense loudly. With no environment at all the service runs in its embedded mode: SQLite under
``var/``, a local Redis, exports on the filesystem under ``var/exports``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ocl_export.profiles import DEFAULT_FORMATS, NAMES

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("OCL_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str) -> str:
    """A string setting; ``NAME_FILE`` (a path) wins over ``NAME``, for secrets."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw in ("True", "true", "1", "yes"):
        return True
    if raw in ("False", "false", "0", "no"):
        return False
    raise ImproperlyConfigured(f"{name} must be True or False, not {raw!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int_list(name: str, default: str, minimum: int = 0) -> list[int]:
    """Comma-separated whole numbers, each at least ``minimum``."""
    items = env_list(name, default)
    try:
        values = [int(item) for item in items]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be comma-separated whole numbers, not {items!r}") from exc
    if any(value < minimum for value in values):
        raise ImproperlyConfigured(f"{name} must hold numbers of at least {minimum}, not {values!r}")
    return values


def env_base_url(name: str) -> str:
    """``scheme://host[:port]`` without a trailing slash, or empty; nothing after the host."""
    raw = env_str(name, "").strip().rstrip("/")
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name} must be a scheme and a host, like https://ocl.example.org, not {raw!r}")
    return raw


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "embedded-default-secret-key-change-me-in-production")
# The absolute URLs handed to clients (Locations, status links) start with PUBLIC_BASE_URL when it
# is set; otherwise with the request's host, which Django checks against ALLOWED_HOSTS. "*" would
# let any Host header into them (host header poisoning), so it is refused without a base URL.
PUBLIC_BASE_URL = env_base_url("PUBLIC_BASE_URL")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
if "*" in ALLOWED_HOSTS and not PUBLIC_BASE_URL:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS=* would build download links from any Host header a request sends: "
        "list the service's host names in ALLOWED_HOSTS, or set PUBLIC_BASE_URL"
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Behind a TLS-terminating proxy the Location URLs must say https.
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework.authtoken",
    "django_rq",
    "drf_spectacular",
    "repos.apps.ReposConfig",
    "ocl_export.apps.OclExportConfig",
    "mirror.apps.MirrorConfig",
    "operations.apps.OperationsConfig",
    "read_cache.apps.ReadCacheConfig",
]

MIDDLEWARE = [
    # outermost: whatever answers a HEAD, its body is dropped here (headers kept)
    "serving.head_requests.HeadWithoutBodyMiddleware",
    # then the request id and the request metrics, which cover everything below
    "operations.middleware.RequestMiddleware",
    # then: a NUL in the path or query would make any database lookup fail with a 500
    "serving.request_guard.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # innermost: an answer kept from an earlier request skips resolution and the view
    "read_cache.middleware.ReadCacheMiddleware",
]

# OpenMRS asks for ".../export" without the slash and must be served directly, so no
# APPEND_SLASH redirects: every URL pattern accepts both spellings instead.
APPEND_SLASH = False
ROOT_URLCONF = "ocl_export.urls"
WSGI_APPLICATION = "ocl_export.wsgi.application"
TEMPLATES: list[dict] = []

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode's web process and worker write to one file: WAL lets readers go on while
    # the worker writes, and IMMEDIATE transactions take the write lock up front (waiting up to
    # the timeout) instead of failing at once with "database is locked" when a read turns write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )
    # models.W040: SQLite has no covering indexes (INCLUDE), so Django builds the two size indexes
    # without their included columns. They only serve PostgreSQL's index-only size sums; the
    # embedded mode sums from the table, correctly, a little slower. Nothing to act on.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
elif "postgresql" in DATABASES["default"]["ENGINE"] and env_bool("DATABASE_NO_PARALLEL_QUERY", True):
    # Exports and limit=0 reads run thousands of short keyset batches; a parallel plan spends
    # ~10 ms starting workers for each (5x the batch itself) and loses the merge join.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c max_parallel_workers_per_gather=0"
# The hot lookups' statements are prepared once per connection (repos/joined_rows.py says why);
# False behind a transaction-mode pooler that cannot carry prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASE_PREPARED_STATEMENTS and "postgresql" in DATABASES["default"]["ENGINE"]:
    # psycopg prepares nothing when the threshold is None (Django's default); with a threshold
    # never reached, only the statements executed with prepare=True are (Django's own cursors
    # bind on the client side and never prepare).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
# Answers kept in each web process until PostgreSQL notifies a change (read_cache/store.py has
# the rule). Needs LISTEN, so PostgreSQL reached directly, not through a transaction-mode pooler.
READ_CACHE = env_bool("READ_CACHE", "postgresql" in DATABASES["default"]["ENGINE"])
READ_CACHE_ENTRIES = env_int("READ_CACHE_ENTRIES", 10_000)
READ_CACHE_MAX_AGE = env_int("READ_CACHE_MAX_AGE", 300, 1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["serving.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["read_cache.authentication.KeptTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "foundation.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "ocl_export.openapi.ServiceSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OCL export service",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ocl_export.openapi.add_components",
        # /healthz, /readyz and /metrics are plain Django views, which drf-spectacular does not see
        "operations.openapi.add_operations",
    ],
}

# --- Redis and the queue ------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
EXPORT_QUEUE = env_str("EXPORT_QUEUE", "exports")
RQ_QUEUES = {
    EXPORT_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("EXPORT_JOB_TIMEOUT", 6 * 3600, 60)},
}
# How long a dead Redis may make a request wait before POST answers 503.
REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT", 2, 1)
# Work horses write their metrics under their worker's name (see jobqueue/worker.py).
RQ = {"WORKER_CLASS": "ocl_export.worker.ExportWorker"}

# --- Exports --------------------------------------------------------------------------------
EXPORT_STORAGE = env_choice("EXPORT_STORAGE", "filesystem", ("filesystem", "s3"))
EXPORT_STORAGE_DIR = Path(env_str("EXPORT_STORAGE_DIR", str(VAR_DIR / "exports")))
# Which answers the export resource gives: the v1 contract, or OCL v2's (ocl_export/profiles.py).
OCL_COMPAT = env_choice("OCL_COMPAT", "v1", NAMES)
EXPORT_DEFAULT_FORMAT = env_choice("EXPORT_DEFAULT_FORMAT", DEFAULT_FORMATS[OCL_COMPAT], ("tgz", "zip"))
EXPORT_ON_VERSION_CREATE = env_bool("EXPORT_ON_VERSION_CREATE", True)
EXPORT_LOCATION_TTL = env_int("EXPORT_LOCATION_TTL", 60, 1)
EXPORT_PRESIGN_TTL = env_int("EXPORT_PRESIGN_TTL", 60, 1)
EXPORT_JOB_TIMEOUT = env_int("EXPORT_JOB_TIMEOUT", 6 * 3600, 60)
EXPORT_HEARTBEAT_INTERVAL = env_int("EXPORT_HEARTBEAT_INTERVAL", 10, 1)
EXPORT_HEARTBEAT_STALE = env_int("EXPORT_HEARTBEAT_STALE", 90, 5)
# A job whose heartbeat beats but whose progress has not moved this long is stuck (a wedged read or
# upload): the reaper fails it and stops its job. Longer than any quiet stretch of a healthy job
# (rendering unrendered rows, summing the size, completing the upload).
EXPORT_PROGRESS_STALE = env_int("EXPORT_PROGRESS_STALE", 900, 5)
# Seconds before each retry of a job that failed for a temporary reason; empty: no retries.
EXPORT_RETRY_DELAYS = env_int_list("EXPORT_RETRY_DELAYS", "10,60,300")
EXPORT_BATCH_SIZE = env_int("EXPORT_BATCH_SIZE", 5000, 1)
EXPORT_GZIP_LEVEL = env_int("EXPORT_GZIP_LEVEL", 1, 0)

AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", "ocl-exports")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL", "") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID", "") or None
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY", "") or None
AWS_S3_SSE = env_choice("AWS_S3_SSE", "", ("", "AES256"))
AWS_LOCATION = env_str("AWS_LOCATION", "exports")
# Every S3 call gives up after these; a stalled S3 must not hold a job (or a download) for long.
AWS_S3_CONNECT_TIMEOUT = env_int("AWS_S3_CONNECT_TIMEOUT", 5, 1)
AWS_S3_READ_TIMEOUT = env_int("AWS_S3_READ_TIMEOUT", 60, 1)
AWS_S3_MAX_ATTEMPTS = env_int("AWS_S3_MAX_ATTEMPTS", 3, 1)

# --- Import ---------------------------------------------------------------------------------
IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 5000, 1)

# --- Mirrors of upstream repositories (the mirror app) ----------------------------------------
MIRROR_ATTEMPTS = env_int("MIRROR_ATTEMPTS", 4, 1)  # tries of one sync step before the run gives up
MIRROR_BACKOFF = env_int("MIRROR_BACKOFF", 10, 0)  # seconds before the second try, doubled after each
MIRROR_TIMEOUT = env_int("MIRROR_TIMEOUT", 60, 1)  # seconds an upstream connection may stay silent
MIRROR_EXPORT_WAIT = env_int("MIRROR_EXPORT_WAIT", 3600, 1)  # seconds to wait for an upstream export

# --- Operations: readiness, metrics, logs ------------------------------------------------------
# /readyz answers within this many seconds however its dependencies behave.
READYZ_TIMEOUT = env_int("READYZ_TIMEOUT", 2, 1)
# /metrics answers only with this bearer token, when set.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# /metrics answers only on requests that reached gunicorn through this listener, when set
# (deploy/gunicorn.conf.py adds it to the addresses gunicorn binds).
METRICS_BIND = env_str("METRICS_BIND", "")
METRICS_BIND_PORT: int | None = None
if METRICS_BIND:
    _port = METRICS_BIND.rpartition(":")[2]
    if not _port.isdigit() or not 0 < int(_port) < 65536:
        raise ImproperlyConfigured(f"METRICS_BIND must be host:port, not {METRICS_BIND!r}")
    METRICS_BIND_PORT = int(_port)
# Read by prometheus_client itself; checked here so that a missing directory stops the start-up
# instead of failing the first metric write.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR {PROMETHEUS_MULTIPROC_DIR!r} is not a directory")
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "observability.logs.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", **({"formatter": "json"} if LOG_FORMAT == "json" else {})}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
