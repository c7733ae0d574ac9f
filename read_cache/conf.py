"""Settings of the read cache (``read_cache/store.py`` has the rule of what is kept and for how long).

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from foundation.environment import env_bool, env_int, env_str

# Answers kept in each web process until PostgreSQL notifies a change. Needs LISTEN, so PostgreSQL
# reached directly, not through a transaction-mode pooler: on by default on PostgreSQL only.
_ENGINE = dj_database_url.parse(env_str("DATABASE_URL", "sqlite://")).get("ENGINE", "")
READ_CACHE = env_bool("READ_CACHE", "postgresql" in _ENGINE)
# Bytes of kept answers a process may hold (keys and bookkeeping counted): a bound by count let one
# client grow every process by gigabytes. 64 MiB a process fits a container of a few hundred MB.
READ_CACHE_BYTES = env_int("READ_CACHE_BYTES", 64 * 1024 * 1024)
if env_str("READ_CACHE_ENTRIES", ""):
    raise ImproperlyConfigured("READ_CACHE_ENTRIES is gone: the read cache is bounded by READ_CACHE_BYTES")
READ_CACHE_MAX_AGE = env_int("READ_CACHE_MAX_AGE", 300, 1)
