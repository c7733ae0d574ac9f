"""Settings of the mirror (subscriptions to an upstream OCL server): how patiently it syncs.

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

from foundation.environment import env_bool, env_int

MIRROR_ATTEMPTS = env_int("MIRROR_ATTEMPTS", 4, 1)  # tries of one sync step before the run gives up
MIRROR_BACKOFF = env_int("MIRROR_BACKOFF", 10, 0)  # seconds before the second try, doubled after each
MIRROR_TIMEOUT = env_int("MIRROR_TIMEOUT", 60, 1)  # seconds an upstream connection may stay silent
MIRROR_EXPORT_WAIT = env_int("MIRROR_EXPORT_WAIT", 3600, 1)  # seconds to wait for an upstream export
MIRROR_DELTAS = env_bool("MIRROR_DELTAS", True)  # take a release as a delta when the upstream offers one
