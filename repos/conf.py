"""Settings of the content app: how the importer writes.

Read by the project settings (``ocl_export/settings.py``), which gather every feature's ``conf.py``.
"""

from __future__ import annotations

from foundation.environment import env_choice, env_int

IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 5000, 1)
# When an import computes its new rows' OCL checksums: "deferred" (an RQ job after the import
# commits, repos.checksum_jobs: ocldev's Python would otherwise cost the import most of its speed)
# or "inline" (while it renders them, as every other writer does).
CHECKSUMS_AT_IMPORT = env_choice("CHECKSUMS_AT_IMPORT", "deferred", ("deferred", "inline"))
