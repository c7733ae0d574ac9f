"""``manage.py verify ID``: is the mirror equal to its upstream? Exit 0 when it is, 1 when not.

Compares, by OCL checksums, every version the mirror holds of the subscription's repository (and
HEAD when the subscription follows it) with the upstream's (``mirror/verify.py``): as a whole
first (the versions' checksums), item by item where those differ (or always, with ``--items``),
and prints each difference: missing here, missing there, or changed, with the item's list, id, and both
sides' version ids and checksums. Exit 2 when the comparison could not be made (upstream down,
a version not held here).
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mirror.client import Upstream, UpstreamError
from mirror.models import Subscription, SubscriptionError
from mirror.verify import verify

COULD_NOT_COMPARE = 2


class Command(BaseCommand):
    help = (
        "Compare a mirror (subscription ID) with its upstream by OCL checksums: every mirrored version "
        "and HEAD. Prints what differs; exits 1 when anything does, 0 when equal, 2 when it cannot compare."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("id", type=int, metavar="ID", help="the subscription")
        parser.add_argument(
            "--only", action="append", dest="versions", metavar="VERSION", help="only this version (repeatable)"
        )
        parser.add_argument("--show", type=int, default=1000, help="differences printed per version (default 1000)")
        parser.add_argument(
            "--items",
            action="store_true",
            help="compare item by item even where a version's checksums equal the upstream's",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        subscription = Subscription.objects.filter(pk=options["id"]).first()
        if subscription is None:
            raise CommandError(f"no subscription {options['id']}", returncode=COULD_NOT_COMPARE)
        self.stdout.write(f"subscription {subscription.pk}: {subscription.url}")
        try:
            upstream = Upstream(subscription.url, subscription.token(), timeout=settings.MIRROR_TIMEOUT)
            try:
                comparisons = verify(subscription, upstream, options["versions"], items=options["items"])
            finally:
                upstream.close()
        except (UpstreamError, SubscriptionError) as exc:
            raise CommandError(f"cannot compare: {exc}", returncode=COULD_NOT_COMPARE) from exc
        differing = 0
        for comparison in comparisons:
            count = len(comparison.differences)
            outcome = "equal" if comparison.equal else f"{count:,} difference{'s' if count != 1 else ''}"
            self.stdout.write(
                f"{comparison.version}: {comparison.here:,} items here, {comparison.there:,} there "
                f"({comparison.source}): {outcome} ({comparison.seconds:.1f} s)"
            )
            for difference in comparison.differences[: options["show"]]:
                self.stdout.write(f"  {difference}")
            if count > options["show"]:
                self.stdout.write(f"  ... and {count - options['show']:,} more")
            differing += 0 if comparison.equal else 1
        if differing:
            self.stdout.write(f"NOT EQUAL: {differing} of {len(comparisons)} versions differ")
            raise SystemExit(1)
        self.stdout.write(f"equal: {len(comparisons)} versions")
