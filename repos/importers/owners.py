"""Owners and repositories an import writes into: the file's own, and placeholders for collections.

A collection's items belong to other sources (``/orgs/CIEL/sources/CIEL/``). When such a source
is not in the database yet, a placeholder organization (or user) and source are created so that
the concept versions have a home and keep their URLs.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from repos.importers.errors import ImportFileError
from repos.importers.normalize import REPO_URL, RepoPlan
from repos.models import Organization, Repository


def ensure_owner(owner: str, owner_type: str) -> dict[str, Any]:
    """The owner's foreign key, as ``Repository`` filter/create keyword arguments."""
    if owner_type == "User":
        user_model = get_user_model()
        user = user_model.objects.filter(username=owner).first()
        if user is None:
            user = user_model(username=owner)
            user.set_unusable_password()
            user.save()
        return {"owner_user": user}
    organization, _ = Organization.objects.get_or_create(mnemonic=owner, defaults={"name": owner})
    return {"owner_org": organization}


def ensure_repository(plan: RepoPlan) -> Repository:
    """The file's repository, created or brought up to the file's metadata."""
    owner = ensure_owner(plan.owner, plan.owner_type)
    repository = (
        Repository.objects.select_related("owner_org", "owner_user")
        .filter(repo_type=plan.repo_type, mnemonic=plan.mnemonic, **owner)
        .first()
    )
    if repository is None:
        repository = Repository.objects.create(
            repo_type=plan.repo_type, mnemonic=plan.mnemonic, **owner, **plan.repo_fields
        )
    else:
        changed = [name for name, value in plan.repo_fields.items() if getattr(repository, name) != value]
        for name in changed:
            setattr(repository, name, plan.repo_fields[name])
        if changed:
            repository.save(update_fields=changed)
    return repository


class SourceResolver:
    """Source URL -> repository id for the items of a file, cached (a file names few sources).

    For a source import every item belongs to the imported source, whatever it says; for a
    collection import each item names its own source, created as a placeholder when absent.
    """

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.cache: dict[str | None, int] = {}
        self.created: list[Repository] = []

    def __call__(self, url: str | None) -> int:
        if self.repository.is_source:
            return self.repository.pk
        found = self.cache.get(url)
        if found is None:
            found = self.cache[url] = self._resolve(url)
        return found

    def _resolve(self, url: str | None) -> int:
        parsed = REPO_URL.match(url or "")
        if parsed is None or parsed.group(3) != Repository.SOURCES:
            raise ImportFileError(f"an item's source URL {url!r} is not a source URL like /orgs/X/sources/Y/")
        segment, owner, _, mnemonic = parsed.groups()
        owner_kwargs = ensure_owner(owner, "Organization" if segment == "orgs" else "User")
        source = Repository.objects.filter(repo_type=Repository.SOURCES, mnemonic=mnemonic, **owner_kwargs).first()
        if source is None:
            source = Repository.objects.create(
                repo_type=Repository.SOURCES, mnemonic=mnemonic, name=mnemonic, **owner_kwargs
            )
            self.created.append(source)
        source.head()  # the placeholder's HEAD receives the items it did not have
        return source.pk
