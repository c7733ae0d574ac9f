"""The subscriptions in the admin console: what each follows, how its runs went, and "sync now".

A subscription's figures are written by its runs alone, so the console shows them; "sync now"
puts a run on the queue through the mirror's own scheduling (``jobs.schedule``, as ``subscribe``
does), after taking away the run waiting on the schedule, which the new run schedules again.
The token is never shown, only where it is read from.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from console.actions import run_action

from .jobs import schedule, unschedule
from .models import Subscription


def sync_now(subscription: Subscription, user: Any) -> str:
    unschedule(subscription.pk)
    job_id = schedule(subscription, delay=0)
    return "run queued" if job_id else "a run is already waiting"


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "url",
        "follows",
        "interval",
        "last_success",
        "short_error",
        "last_error_on",
        "running_since",
        "runs",
        "failures",
    )
    list_display_links = ("id", "url")
    search_fields = ("url",)
    actions = ("sync_now",)
    readonly_fields = (
        "url",
        "credentials",
        "follows",
        "interval",
        "created_on",
        "running_since",
        "last_run",
        "last_success",
        "reached",
        "last_error",
        "last_error_on",
        "runs",
        "failures",
        "versions_received",
        "items_received",
        "items_applied",
        "bytes_received",
        "last_report",
    )
    exclude = ("token_env", "token_file", "follow_released", "follow_head")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # `manage.py subscribe` checks the URL and where the token comes from

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # `manage.py unsubscribe` also takes its scheduled run away

    @admin.display(description="last error")
    def short_error(self, subscription: Subscription) -> str:
        error = subscription.last_error
        return error if len(error) <= 80 else f"{error[:79]}…"

    @admin.action(description="Sync now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        run_action(request, queryset, sync_now)
