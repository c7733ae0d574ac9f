"""A read-only view of the subscriptions, for staff: what each follows and how its runs went.

The token itself is never shown, only where it is read from.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from repos.representation.encoding import iso

from .models import Subscription


def describe(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "url": subscription.url,
        "credentials": subscription.credentials,
        "follow_released": subscription.follow_released,
        "follow_head": subscription.follow_head,
        "interval": subscription.interval,
        "reconcile_hours": subscription.reconcile_hours,
        "reconciled_on": iso(subscription.reconciled_on),
        "created_on": iso(subscription.created_on),
        "running_since": iso(subscription.running_since),
        "last_run": iso(subscription.last_run),
        "last_success": iso(subscription.last_success),
        "reached": iso(subscription.reached),
        "last_error": subscription.last_error or None,
        "last_error_on": iso(subscription.last_error_on),
        "runs": subscription.runs,
        "failures": subscription.failures,
        "versions_received": subscription.versions_received,
        "items_received": subscription.items_received,
        "items_applied": subscription.items_applied,
        "bytes_received": subscription.bytes_received,
        "last_report": subscription.last_report,
    }


class SubscriptionListView(APIView):
    permission_classes = [IsAdminUser]

    def get(self, request: Request) -> Response:
        return Response([describe(subscription) for subscription in Subscription.objects.all()])


class SubscriptionDetailView(APIView):
    permission_classes = [IsAdminUser]

    def get(self, request: Request, pk: int) -> Response:
        subscription = Subscription.objects.filter(pk=pk).first()
        if subscription is None:
            raise NotFound("No such subscription.")
        return Response(describe(subscription))
