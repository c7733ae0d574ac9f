"""``manage.py unsubscribe ID``: stop mirroring; the content already mirrored stays."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from mirror.jobs import unschedule
from mirror.models import Subscription


class Command(BaseCommand):
    help = (
        "Delete a subscription and cancel its scheduled runs. The repository, its versions and "
        "their exports stay as they are: they are content of this service now."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("id", type=int, help="the subscription's id (see `subscriptions`)")

    def handle(self, *args: Any, **options: Any) -> None:
        subscription = Subscription.objects.filter(pk=options["id"]).first()
        if subscription is None:
            raise CommandError(f"no subscription {options['id']}")
        subscription.delete()
        try:
            cancelled = unschedule(options["id"])
        except RedisError as exc:
            # A run that still fires finds no subscription and stops (see jobs.run_subscription).
            self.stderr.write(f"the queue did not answer ({exc}); a waiting run will find nothing to do")
            cancelled = 0
        self.stdout.write(
            f"subscription {options['id']} to {subscription.url} deleted; {cancelled} waiting run(s) cancelled"
        )
