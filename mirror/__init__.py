"""Mirrors of upstream OCL repositories: subscriptions kept current from exports and diffs.

``client`` speaks HTTP to the upstream server the way OCL clients do and only writes downloaded
files; ``sync`` hands those files to the existing importer (``repos.importers``), the only writer
of content. Nothing under ``repos/`` or ``ocl_export/`` imports this package.
"""
