"""Settings of the job plumbing: where Redis is, the queue every worker listens on, and how long a
dead Redis may hold a request. Read by the project settings (``ocl_export/settings.py``), which
gather every feature's ``conf.py``; the code reads them as ``django.conf.settings.NAME``.
"""

from __future__ import annotations

from foundation.environment import env_int, env_str

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
EXPORT_QUEUE = env_str("EXPORT_QUEUE", "exports")
RQ_QUEUES = {
    EXPORT_QUEUE: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("EXPORT_JOB_TIMEOUT", 6 * 3600, 60)},
}
# How long a dead Redis may make a request wait before POST answers 503.
REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT", 2, 1)
