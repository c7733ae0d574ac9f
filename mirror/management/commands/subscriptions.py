"""``manage.py subscriptions``: the subscriptions and their state, as a table."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from mirror.models import Subscription
from mirror.table import subscription_rows, table


class Command(BaseCommand):
    help = "List the subscriptions: what each follows, when it last succeeded, what it reached, its last error."

    def handle(self, *args: Any, **options: Any) -> None:
        subscriptions = list(Subscription.objects.all())
        if not subscriptions:
            self.stdout.write("no subscriptions (add one with `manage.py subscribe URL`)")
            return
        self.stdout.write(table(subscription_rows(subscriptions)))
