"""Settings of the content app: how the importer writes.

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

from foundation.environment import env_int

IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 5000, 1)
