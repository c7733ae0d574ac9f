"""``manage.py create_version REPO_URL VERSION_ID``: snapshot HEAD as a named version."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from repos.importers.versions import VersionError, create_version


class Command(BaseCommand):
    help = (
        "Create an immutable version of a repository from its HEAD, e.g. "
        "`create_version /orgs/CIEL/sources/CIEL/ v2016-08-22 --released`. "
        "REPO_URL is the repository's URL path (/orgs/:org/ or /users/:user/, then sources/ or "
        "collections/, then the repository id). The version_created signal is sent after the commit "
        "(with EXPORT_ON_VERSION_CREATE the export feature then queues an export)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("repo_url", help="e.g. /orgs/CIEL/sources/CIEL/")
        parser.add_argument("version_id", help="the new version's id, e.g. v2016-08-22")
        parser.add_argument("--description", default="", help="the version's description")
        parser.add_argument("--released", action="store_true", help="mark the version released")
        parser.add_argument("--user", default=None, help="username recorded as the creator")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = create_version(
                options["repo_url"],
                options["version_id"],
                description=options["description"],
                released=options["released"],
                username=options["user"],
            )
        except VersionError as exc:
            raise CommandError(str(exc)) from exc
        counts = f"{version.concepts.count()} concepts, {version.mappings.count()} mappings"
        self.stdout.write(f"created {version.url} ({counts}, released={version.released})")
