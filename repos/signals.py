"""Signals the terminology core sends; the export feature listens (imports flow one way)."""

from django.dispatch import Signal

# Sent after the transaction that created a named repository version has committed.
# kwargs: version (RepositoryVersion), user (the creator or None)
version_created = Signal()
