"""Settings of the export feature: where archives are stored (filesystem or S3), which answers the
export resource gives, and how its jobs pace, retry and give up.

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from foundation import environment
from foundation.environment import env_bool, env_choice, env_int, env_int_list, env_str

from . import profiles

EXPORT_STORAGE = env_choice("EXPORT_STORAGE", "filesystem", ("filesystem", "s3"))
EXPORT_STORAGE_DIR = Path(env_str("EXPORT_STORAGE_DIR", str(environment.VAR_DIR / "exports")))
# Which answers the export resource gives: the v1 contract, or OCL v2's (ocl_export/profiles.py).
OCL_COMPAT = env_choice("OCL_COMPAT", "v1", profiles.NAMES)
EXPORT_DEFAULT_FORMAT = env_choice("EXPORT_DEFAULT_FORMAT", profiles.DEFAULT_FORMATS[OCL_COMPAT], ("tgz", "zip"))
EXPORT_ON_VERSION_CREATE = env_bool("EXPORT_ON_VERSION_CREATE", True)
# When a released version's export completes, queue the delta from the previous released version.
EXPORT_DELTA_ON_RELEASE = env_bool("EXPORT_DELTA_ON_RELEASE", True)
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


# --- Rate limits (ocl_export/throttling.py): counted in Redis, shared by every web process -------
RATE = re.compile(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """A DRF rate (``30/hour``: a number, a slash, second/minute/hour/day), or empty for none."""
    value = env_str(name, default).strip()
    if value in ("", "off"):
        return ""
    if not RATE.match(value):
        raise ImproperlyConfigured(
            f"{name} must be like 30/hour (per second, minute, hour or day) or off, not {value!r}"
        )
    return value


RATE_LIMIT_EXPORT_WRITES = env_rate("RATE_LIMIT_EXPORT_WRITES", "30/hour")
RATE_LIMIT_ANONYMOUS_READS = env_rate("RATE_LIMIT_ANONYMOUS_READS", "")
# Redis keys of the counts start with this (the tests give each run its own).
RATE_LIMIT_KEY_PREFIX = "ocl-rate"
