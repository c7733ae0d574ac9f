"""``manage.py import_ocl PATH``: import an OCL export file (a thin shell over import_file)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from repos.importers import ImportFileError, import_file


class Command(BaseCommand):
    help = (
        "Import an OCL export file (.tgz, .tar.gz, .zip or .json; OCL v1 or v2; Source, Source Version, "
        "Collection or Collection Version) into its owner's repository, as a named version plus HEAD. "
        "Re-importing the same file changes nothing."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> ArgumentParser:
        # Django reserves --version for its own version; this command's --version is the repository's.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", help="the export file")
        parser.add_argument(
            "--version",
            dest="version_id",
            help="version id for a plain Source/Collection file (default: from a file name like "
            "CIEL_v2016-08-22.20161004123113.tgz, else 'v' + the date of the newest item)",
        )
        parser.add_argument(
            "--owner-type", choices=["orgs", "users"], help="owner type, overriding the file's owner_type"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = import_file(
                options["path"],
                version=options["version_id"],
                owner_type=options["owner_type"],
                quiet=options["quiet"] or options["verbosity"] == 0,
            )
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] > 0:
            self.stdout.write(str(summary))
