"""``manage.py backfill_checksums``: OCL checksums for item rows written before they existed."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from repos.checksum_store import backfill


class Command(BaseCommand):
    help = (
        "Compute and store the OCL standard and smart checksums of every concept and mapping row "
        "that has none (rows imported before migration repos 0008). Batched, one transaction per "
        "batch: safe to run beside the service, to stop, and to run again. Prints how many it did."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=5000, help="rows per batch (default 5000)")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]

        def progress(kind: str, rows: int) -> None:
            if verbosity > 1:
                self.stdout.write(f"{kind}: {rows} rows")

        done = backfill(max(1, options["batch_size"]), on_batch=progress)
        self.stdout.write(f"checksums stored for {done} rows")
