"""Creating a named version from HEAD, by repository URL, and telling the export feature."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from repos import signals
from repos.importers.errors import ImportFileError
from repos.importers.normalize import REPO_URL
from repos.models import HEAD, LATEST, Repository, RepositoryVersion, snapshot_head


class VersionError(ImportFileError):
    """The repository does not exist, or the version id is taken or reserved."""


def find_repository(url: str) -> Repository:
    """``/orgs/CIEL/sources/CIEL/`` (slashes optional) to its repository."""
    normalized = "/" + url.strip("/") + "/"
    parsed = REPO_URL.match(normalized)
    if parsed is None or parsed.end() != len(normalized):
        raise VersionError(f"{url!r} is not a repository URL like /orgs/CIEL/sources/CIEL/")
    segment, owner, repo_type, mnemonic = parsed.groups()
    owner_filter = {"owner_org__mnemonic": owner} if segment == "orgs" else {"owner_user__username": owner}
    repository = (
        Repository.objects.select_related("owner_org", "owner_user")
        .filter(repo_type=repo_type, mnemonic=mnemonic, **owner_filter)
        .first()
    )
    if repository is None:
        raise VersionError(f"no repository at {normalized}")
    return repository


def create_version(
    url: str, version_id: str, *, description: str = "", released: bool = False, username: str | None = None
) -> RepositoryVersion:
    """Snapshot HEAD of the repository at ``url`` as ``version_id``; ``version_created`` follows the commit."""
    repository = find_repository(url)
    if version_id in (HEAD, LATEST) or not version_id or "/" in version_id:
        raise VersionError(f"{version_id!r} cannot name a version")
    user = None
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise VersionError(f"no user {username!r}")
    with transaction.atomic():
        if repository.versions.filter(version=version_id).exists():
            raise VersionError(f"{repository.url} already has a version {version_id!r}")
        version = snapshot_head(
            repository, version_id, description=description, released=released, created_by=username or ""
        )
        # Listeners enqueue an export: only once the snapshot is visible to other processes.
        transaction.on_commit(
            lambda: signals.version_created.send(sender=RepositoryVersion, version=version, user=user)
        )
    return version
