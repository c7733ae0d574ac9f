"""Settings of the operators' endpoints: how long /readyz may take, and who may read /metrics.

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from foundation.environment import env_int, env_str

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
