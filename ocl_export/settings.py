"""The project's settings: Django's own (hosts, database, apps, middleware, DRF), then each feature's.

Every value comes from the environment through the typed readers of ``foundation.environment``,
which refuse nonsense loudly. A feature's settings live in its own ``conf.py`` (``ocl_export/conf.py``
for exports, ``mirror/conf.py``, ``read_cache/conf.py``...), gathered at the end of this module.
With no environment at all the service runs in its embedded mode: SQLite under ``var/``, a local
Redis, exports on the filesystem under ``var/exports``.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from foundation.environment import VAR_DIR, env_base_url, env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


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
    # the admin console (console/ says what it is for): Django's admin, its own site
    "console.apps.ConsoleConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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
    # the admin console's static files, sessions, CSRF, users and messages, run for its own pages
    # and for requests carrying a session cookie only (console/middleware.py): API clients send a
    # token and no cookie, and skip them
    "console.middleware.ConsoleMiddleware",
    # anonymous reads are counted before the kept answers, which would otherwise skip any limit
    "ocl_export.throttling.AnonymousReadLimitMiddleware",
    # innermost: an answer kept from an earlier request skips resolution and the view
    "read_cache.middleware.ReadCacheMiddleware",
]
# The admin looks for its session, user and message middleware as entries of MIDDLEWARE; they are
# in ConsoleMiddleware's chain, run for every request the admin's pages get.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

# OpenMRS asks for ".../export" without the slash and must be served directly, so no
# APPEND_SLASH redirects: every URL pattern accepts both spellings instead.
APPEND_SLASH = False
ROOT_URLCONF = "ocl_export.urls"
WSGI_APPLICATION = "ocl_export.wsgi.application"
# Only the admin console renders templates; the API answers JSON.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# Staff (is_staff) run the service: in the console they may do everything the API lets them do.
AUTHENTICATION_BACKENDS = ["console.access.StaffBackend"]
STATIC_URL = "/static/"
# `manage.py collectstatic` writes the admin's files there (the Dockerfile does) and whitenoise
# serves them; unset, whitenoise serves them from the installed apps themselves (make run, tests).
STATIC_ROOT = env_str("STATIC_ROOT", "") or None
WHITENOISE_USE_FINDERS = STATIC_ROOT is None

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
    SILENCED_SYSTEM_CHECKS += ["models.W040"]
elif "postgresql" in DATABASES["default"]["ENGINE"]:
    session = []
    if env_bool("DATABASE_NO_PARALLEL_QUERY", True):
        # Exports and limit=0 reads run thousands of short keyset batches; a parallel plan spends
        # ~10 ms starting workers for each (5x the batch itself) and loses the merge join.
        session.append("-c max_parallel_workers_per_gather=0")
    if random_page_cost := env_float("DATABASE_RANDOM_PAGE_COST", 1.1):
        # PostgreSQL's default (4) prices a page read off an index as a spinning disk's seek. A
        # version written moments ago (its rows not yet marked all-visible) then looked cheaper to
        # hash and sort than to walk in index order: its first export sorted 91 MB in the server
        # and took twice as long, and a delta's small merges scanned whole item tables.
        session.append(f"-c random_page_cost={random_page_cost}")
    if session:
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = " ".join(session)
# The hot lookups' statements are prepared once per connection (repos/joined_rows.py says why);
# False behind a transaction-mode pooler that cannot carry prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASE_PREPARED_STATEMENTS and "postgresql" in DATABASES["default"]["ENGINE"]:
    # psycopg prepares nothing when the threshold is None (Django's default); with a threshold
    # never reached, only the statements executed with prepare=True are (Django's own cursors
    # bind on the client side and never prepare).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["serving.parsers.StrictJSONParser"],
    # A token first (its 401 says "Token"); then the admin console's session, which DRF checks for
    # CSRF on writes. Token requests never meet CSRF.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "read_cache.authentication.KeptTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
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

# --- Each feature's own settings ---------------------------------------------------------------
# A feature's settings and their defaults are read in its own conf.py, named here by string (the
# project shell may name the apps, never import them): the upper-case names of each module become
# settings, and no two modules may define one name.
FEATURE_SETTINGS = (
    "observability.conf",
    "jobqueue.conf",
    "read_cache.conf",
    "repos.conf",
    "ocl_export.conf",
    "mirror.conf",
    "operations.conf",
)


def feature_settings(modules: tuple[str, ...], project: set[str]) -> dict[str, Any]:
    """The settings each module defines (its upper-case names), refusing a name defined twice."""
    found: dict[str, Any] = {}
    for module in modules:
        for name, value in vars(import_module(module)).items():
            if name.isupper() and not name.startswith("_"):
                if name in found or name in project:
                    raise ImproperlyConfigured(f"{module} sets {name}, which another feature's settings set already")
                found[name] = value
    return found


globals().update(feature_settings(FEATURE_SETTINGS, {name for name in globals() if name.isupper()}))

# Work horses write their metrics under their worker's name (see jobqueue/worker.py).
RQ = {"WORKER_CLASS": "ocl_export.worker.ExportWorker"}
