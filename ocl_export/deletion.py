"""Deleting an export: the one way the API's DELETE and the admin console remove one.

The row goes by a compare-and-set on the state it was seen in, so an export that a POST re-armed
or a worker moved meanwhile is left alone; its stored archive goes once the deletion has
committed (``receivers.delete_archive``), never while a rollback could bring the row back.
"""

from __future__ import annotations

from .models import Export


def delete_export(export: Export) -> bool:
    """Delete ``export`` (as ``standing.where_export_stands`` left it) unless it is pending or processing;
    True when its row went."""
    if export.is_active:
        return False
    _, deleted = Export.objects.filter(pk=export.pk, state=export.state).delete()
    return deleted.get(Export._meta.label, 0) == 1
