"""Test settings: the real settings, pointed at PostgreSQL and a Redis database of the tests' own.

The environment still wins, so CI or a developer can aim the suite elsewhere.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ocl_export")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("EXPORT_ON_VERSION_CREATE", "False")
os.environ.setdefault("EXPORT_DELTA_ON_RELEASE", "False")

from ocl_export.settings import *  # noqa: E402,F403

SECRET_KEY = "tests-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EXPORT_STORAGE_DIR = VAR_DIR / "test-exports"  # noqa: F405
# In-process tests roll their transactions back, so no change they make is ever notified: a kept
# answer would outlive its rows. The live stacks (real processes, committed changes) keep the
# production default, on.
READ_CACHE = False
# In-process tests make hundreds of POSTs and DELETEs as a handful of users, whose ids come back
# in the next run's new database: the limit is off here, and the tests of rate limits switch it
# on (tests/test_rate_limits.py). Counts carry this run's prefix, so no run meets another's.
RATE_LIMIT_EXPORT_WRITES = ""
RATE_LIMIT_KEY_PREFIX = f"ocl-rate-test-{os.getpid()}-{os.urandom(4).hex()}"
