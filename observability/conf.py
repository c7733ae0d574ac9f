"""Settings of metrics and logs: where processes share their metrics, and how log lines look.

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from foundation.environment import env_choice, env_str

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
