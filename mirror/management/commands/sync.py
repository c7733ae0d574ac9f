"""``manage.py sync ID... | --all``: run subscriptions now, in the foreground, with a progress bar."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from mirror.models import Subscription
from mirror.sync import Progress, sync


class BarProgress(Progress):
    """A tqdm bar of the bytes received, captioned with the step under way."""

    def __init__(self, label: str, disable: bool) -> None:
        self.bar = tqdm(desc=label, unit="B", unit_scale=True, file=sys.stderr, disable=disable, mininterval=0.5)
        self.label = label

    def step(self, name: str) -> None:
        self.bar.set_description(f"{self.label}: {name}")

    def bytes(self, count: int) -> None:
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()


class Command(BaseCommand):
    help = (
        "Sync subscriptions now: new released versions, then HEAD's changes. Exits non-zero when a "
        "run failed (its error is also kept on the subscription, see `subscriptions`)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="subscription ids")
        parser.add_argument("--all", action="store_true", help="every subscription")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["ids"]) == bool(options["all"]):
            raise CommandError("name subscription ids, or --all")
        subscriptions = Subscription.objects.all()
        if options["ids"]:
            subscriptions = subscriptions.filter(pk__in=options["ids"])
            missing = set(options["ids"]) - {s.pk for s in subscriptions}
            if missing:
                raise CommandError(f"no subscription {', '.join(map(str, sorted(missing)))}")
        failed = []
        for subscription in subscriptions:
            progress = BarProgress(f"sync {subscription.pk}", options["quiet"] or options["verbosity"] == 0)
            try:
                report = sync(subscription, progress)
            finally:
                progress.close()
            self.stdout.write(str(report))
            if not report.ok:
                failed.append(subscription.pk)
        if failed:
            raise CommandError(f"subscription(s) {', '.join(map(str, failed))} did not complete")
