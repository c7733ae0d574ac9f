"""``manage.py load_sample``: the embedded sample data and demo account (idempotent)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from repos.importers import ImportFileError
from repos.importers.sample import load_sample


class Command(BaseCommand):
    help = (
        "Load the embedded sample (OCL DemoSource v1.0, /orgs/DemoOrg/sources/DemoSource/) and ensure "
        "a user 'demo', admin of DemoOrg, whose API token is $DEMO_TOKEN (default: a fixed development "
        "value, printed). Running it again changes nothing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = load_sample(quiet=options["quiet"] or options["verbosity"] == 0)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        imported = summary.imported
        self.stdout.write(f"sample {imported.repository}{imported.version}/: {imported.status}")
        user_state = "created" if summary.user_created else "exists"
        token_state = "set" if summary.token_changed else "unchanged"
        self.stdout.write(f"user {summary.username} ({user_state}), admin of DemoOrg")
        self.stdout.write(f"API token ({token_state}): {summary.token}")
        self.stdout.write(
            f'try: curl -H "Authorization: Token {summary.token}" '
            f"http://127.0.0.1:8000{imported.repository}{imported.version}/export/"
        )
