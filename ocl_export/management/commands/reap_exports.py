"""``manage.py reap_exports``: fail exports whose worker died and clean up after them.

Run it every minute or two from cron or rq-scheduler, so that nothing stays processing forever.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from observability import metrics
from ocl_export.reaper import reap_exports


class Command(BaseCommand):
    help = "Mark dead export jobs failed, abort the uploads they left, forget used download links once expired."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--uploads-older-than",
            type=int,
            default=None,
            metavar="SECONDS",
            help="abort any incomplete upload older than this (default: the job timeout plus an hour)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        metrics.name_process("reaper")  # one sweep after another: one metrics file, not one per run
        summary = reap_exports(upload_age_seconds=options["uploads_older_than"])
        self.stdout.write(
            f"failed {summary.failed} dead export(s), aborted {summary.uploads_aborted} upload(s), "
            f"forgot {summary.redeemed_forgotten} used download link(s)"
        )
