"""The exports in the admin console: where each stands, why one failed, and delete, rebuild or cancel.

A row's fields are the state machine's (``models.Export``), written by the jobs alone, so the
console shows them and never edits them. Its actions go through the API's own functions,
one export at a time (``console.actions.run_action``); cancel is ``ocl_export.cancel``'s, as the API's
DELETE of an export under way.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from rest_framework.exceptions import PermissionDenied

from console.access import may_use_console
from console.actions import run_action
from repos.models import Repository

from .cancel import cancel_export
from .deletion import delete_export
from .jobs import queue_export
from .models import Export, ExportState
from .standing import known, where_export_stands

BUSY = "not done: it is being produced"


def delete(export: Export, user: Any) -> str:
    """What the API's DELETE does to one export: its row, and its archive after the commit."""
    if not export.version.repository.is_admin(user):
        raise PermissionDenied("Only administrators of this repository may delete its exports.")
    export = where_export_stands(known(export)).export or export
    if delete_export(export):
        return "deleted, archive removed from storage" if export.key else "deleted"
    return BUSY if export.is_active else "already gone"


def cancel(export: Export, user: Any) -> str:
    """What the API's DELETE does to an export under way: its job stopped, its upload aborted."""
    if not export.version.repository.is_admin(user):
        raise PermissionDenied("Only administrators of this repository may cancel its exports.")
    export = where_export_stands(known(export)).export or export
    return "cancelled" if cancel_export(export, user) else f"not under way ({export.state})"


def rebuild(export: Export, user: Any) -> str:
    """A new archive: a completed export is deleted and queued again, a failed one queued again
    (what a DELETE then a POST, or a POST, of the API does)."""
    export = where_export_stands(known(export)).export or export
    if export.is_active:
        return BUSY
    if export.state == ExportState.COMPLETED:
        delete_export(export)
    queue_export(export.version, export.format, user)
    return "queued"


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("version", "format", "state", "archive_size", "items", "duration", "short_error", "created_on")
    list_filter = ("state", "format", ("version__repository", admin.RelatedOnlyFieldListFilter))
    search_fields = ("version__repository__mnemonic", "version__version", "error")
    list_select_related = ("version__repository__owner_org", "version__repository__owner_user")
    ordering = ("-created_on",)
    actions = ("delete_exports", "rebuild_exports", "cancel_exports")
    readonly_fields = (
        "version",
        "format",
        "state",
        "job_id",
        "attempts",
        "error",
        "key",
        "file_name",
        "archive_size",
        "sha256",
        "last_updated",
        "items_done",
        "items_total",
        "duration",
        "requested_by",
        "created_on",
        "queued_on",
        "started_on",
        "finished_on",
        "heartbeat_on",
        "progress_on",
    )
    exclude = ("size",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Export]:
        """Staff see every export; a repository admin those of the repositories it administers."""
        exports = super().get_queryset(request)
        if request.user.is_staff:
            return exports
        return exports.filter(version__repository__in=Repository.objects.administered_by(request.user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_use_console(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return obj.version.repository.is_admin(request.user)
        return may_use_console(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # exports are asked for with POST (or "rebuild" here), never typed in

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Django's delete would skip the state check: the action below does it

    @admin.display(description="size", ordering="size")
    def archive_size(self, export: Export) -> str:
        return filesizeformat(export.size) if export.size is not None else "-"

    @admin.display(description="items", ordering="items_total")
    def items(self, export: Export) -> str:
        if export.items_total is None:
            return str(export.items_done or "-")
        return (
            f"{export.items_total:,}"
            if export.state == ExportState.COMPLETED
            else f"{export.items_done:,} of {export.items_total:,}"
        )

    @admin.display(description="duration")
    def duration(self, export: Export) -> str:
        if export.started_on is None or export.finished_on is None:
            return "-"
        return f"{(export.finished_on - export.started_on).total_seconds():.1f} s"

    @admin.display(description="error")
    def short_error(self, export: Export) -> str:
        return export.error if len(export.error) <= 80 else f"{export.error[:79]}…"

    @admin.action(description="Delete the selected exports and their archives")
    def delete_exports(self, request: HttpRequest, queryset: QuerySet[Export]) -> None:
        run_action(request, queryset, delete)

    @admin.action(description="Rebuild the selected exports")
    def rebuild_exports(self, request: HttpRequest, queryset: QuerySet[Export]) -> None:
        run_action(request, queryset, rebuild)

    @admin.action(description="Cancel the selected exports under way")
    def cancel_exports(self, request: HttpRequest, queryset: QuerySet[Export]) -> None:
        run_action(request, queryset, cancel)
