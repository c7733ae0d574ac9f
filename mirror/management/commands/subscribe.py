"""``manage.py subscribe URL``: mirror an upstream repository (a thin shell over models.subscribe)."""

from __future__ import annotations

from argparse import ArgumentParser, BooleanOptionalAction
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from mirror.jobs import schedule
from mirror.models import DEFAULT_INTERVAL, DEFAULT_RECONCILE_HOURS, SubscriptionError, subscribe


class Command(BaseCommand):
    help = (
        "Subscribe to a repository on an upstream OCL server (OCL v2, or another instance of this "
        "service), e.g. `subscribe https://api.openconceptlab.org/orgs/CIEL/sources/CIEL/ --token-env "
        "CIEL_TOKEN`. The token is read at each run from the variable or file named, never stored. "
        "Running it again for the same URL updates the subscription. The first run is scheduled at "
        "once (workers run --with-scheduler); `sync ID` runs it in the foreground."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("url", help="the upstream repository, https://host/orgs/X/sources/Y/")
        token = parser.add_mutually_exclusive_group()
        token.add_argument("--token-env", default="", metavar="NAME", help="environment variable holding the token")
        token.add_argument("--token-file", default="", metavar="PATH", help="file holding the token")
        parser.add_argument(
            "--released", action=BooleanOptionalAction, default=True, help="mirror every new released version"
        )
        parser.add_argument(
            "--head", action=BooleanOptionalAction, default=True, help="keep HEAD current with updatedSince diffs"
        )
        parser.add_argument(
            "--every", type=int, default=DEFAULT_INTERVAL, metavar="SECONDS", help="seconds between runs"
        )
        parser.add_argument(
            "--reconcile-every",
            type=int,
            default=DEFAULT_RECONCILE_HOURS,
            metavar="HOURS",
            help="an upstream that lists no removals (OCL v2): check HEAD's membership against its listings "
            "at most this often, so what it removed leaves the mirror too (0: never)",
        )
        parser.add_argument("--no-schedule", action="store_true", help="do not put a run on the queue now")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            subscription, created = subscribe(
                options["url"],
                token_env=options["token_env"],
                token_file=options["token_file"],
                follow_released=options["released"],
                follow_head=options["head"],
                interval=options["every"],
                reconcile_hours=options["reconcile_every"],
            )
        except SubscriptionError as exc:
            raise CommandError(str(exc)) from exc
        action = "created" if created else "updated"
        self.stdout.write(
            f"subscription {subscription.pk} {action}: {subscription.url} "
            f"({subscription.follows}, every {subscription.interval} s, token: {subscription.credentials})"
        )
        if options["no_schedule"]:
            return
        try:
            job_id = schedule(subscription, delay=0)
        except RedisError as exc:
            raise CommandError(f"saved, but the queue did not take its first run ({exc}); run `sync`") from exc
        self.stdout.write(f"first run queued (job {job_id})" if job_id else "a run is already waiting")
