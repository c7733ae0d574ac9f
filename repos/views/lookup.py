"""From URL kwargs to owner, repository, version and item rows, with visibility applied.

Everything the caller may not see is a 404 with the same wording as something that does not
exist, so a private repository's name cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from rest_framework.exceptions import NotAuthenticated, NotFound
from rest_framework.request import Request

from repos.models import HEAD, LATEST, ConceptVersion, MappingVersion, Organization, Repository, RepositoryVersion
from repos.representation import CONCEPTS, ItemKind, member_bytes

ORGS = "orgs"
USERS = "users"
SELF = "user"  # "/user/...": the caller's own account


@dataclass(frozen=True)
class Owner:
    """An organization or a user; exactly one is set."""

    org: Organization | None = None
    user: AbstractBaseUser | None = None

    def repositories(self) -> QuerySet[Repository]:
        if self.org is not None:
            return Repository.objects.filter(owner_org=self.org)
        return Repository.objects.filter(owner_user=self.user)


def get_owner(request: Request, owner_kind: str, owner: str | None) -> Owner:
    if owner_kind == SELF:
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication is required for /user/.")
        return Owner(user=request.user)
    if owner_kind == ORGS:
        org = Organization.objects.filter(mnemonic=owner).first()
        if org is None:
            raise NotFound(f"Organization {owner!r} not found.")
        return Owner(org=org)
    user = get_user_model().objects.filter(username=owner).first()
    if user is None:
        raise NotFound(f"User {owner!r} not found.")
    return Owner(user=user)


def visible_repositories(request: Request, owner: Owner, repo_type: str) -> QuerySet[Repository]:
    """The owner's repositories of one type that the caller may see."""
    queryset = owner.repositories().filter(repo_type=repo_type).select_related("owner_org", "owner_user")
    return queryset.visible_to(request.user).order_by("mnemonic")


def repository_filter(request: Request, kwargs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """ORM filters selecting the URL's repository through ``prefix`` (e.g. ``"repository__"``):
    owner, type and name in the one query that loads what the request needs."""
    kind = kwargs["owner_kind"]
    if kind == SELF:
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication is required for /user/.")
        owner = {f"{prefix}owner_user": request.user}
    elif kind == ORGS:
        owner = {f"{prefix}owner_org__mnemonic": kwargs["owner"]}
    else:
        owner = {f"{prefix}owner_user__username": kwargs["owner"]}
    return {**owner, f"{prefix}repo_type": kwargs["repo_type"], f"{prefix}mnemonic": kwargs["repo"]}


def get_repository(request: Request, kwargs: dict[str, Any]) -> Repository:
    """One query; the owner is looked up on its own only to word a 404 when nothing matched."""
    repository = (
        Repository.objects.filter(**repository_filter(request, kwargs))
        .select_related("owner_org", "owner_user")
        .first()
    )
    if repository is None:
        get_owner(request, kwargs["owner_kind"], kwargs.get("owner"))  # the owner's own 404 first
    if repository is None or not repository.can_view(request.user):
        raise NotFound(f"Repository {kwargs['repo']!r} not found.")
    return repository


def get_repository_version(request: Request, kwargs: dict[str, Any], name: str) -> RepositoryVersion:
    """The URL's version with its repository (and owner, and predecessor) in one query.

    When that finds nothing visible, the step-by-step lookup runs to raise the precise 404 (or to
    create a repository's missing HEAD).
    """
    rows = RepositoryVersion.objects.filter(**repository_filter(request, kwargs, "repository__")).select_related(
        "repository__owner_org", "repository__owner_user", "previous_version"
    )
    if name == LATEST:
        rows = rows.exclude(version=HEAD).filter(released=True, retired=False).order_by("-created_on", "-id")
    else:
        rows = rows.filter(version=name)
    version = rows.first()
    if version is None or not version.repository.can_view(request.user):
        return get_version(get_repository(request, kwargs), name)
    return attach(version, version.repository)


def attach(version: RepositoryVersion, repository: Repository) -> RepositoryVersion:
    """Point a version (and its predecessor) at the already loaded repository: no query per URL."""
    version.repository = repository
    previous = version.previous_version
    if previous is not None and previous.repository_id == repository.pk:
        previous.repository = repository
    return version


def named_versions(repository: Repository) -> QuerySet[RepositoryVersion]:
    """Every version but HEAD, newest first (id breaks ties between versions made in one instant)."""
    return with_head(repository).exclude(version=HEAD)


def with_head(repository: Repository) -> QuerySet[RepositoryVersion]:
    """Every version, HEAD included, in the order of :func:`named_versions`."""
    return repository.versions.select_related("previous_version").order_by("-created_on", "-id")


def get_version(repository: Repository, name: str) -> RepositoryVersion:
    if name == HEAD:
        version = repository.head()
        if version.previous_version_id is not None:
            version = RepositoryVersion.objects.select_related("previous_version").get(pk=version.pk)
    elif name == LATEST:
        version = named_versions(repository).filter(released=True, retired=False).first()
        if version is None:
            raise NotFound(f"{repository.mnemonic} has no released version.")
    else:
        version = repository.versions.select_related("previous_version").filter(version=name).first()
        if version is None:
            raise NotFound(f"Version {name!r} of {repository.mnemonic} not found.")
    return attach(version, repository)


def item_model(kind: ItemKind) -> type[ConceptVersion] | type[MappingVersion]:
    return ConceptVersion if kind is CONCEPTS else MappingVersion


def _label(kind: ItemKind) -> str:
    return "Concept" if kind is CONCEPTS else "Mapping"


def member_body(kind: ItemKind, version: RepositoryVersion, item_id: str) -> bytes:
    """The bytes of item ``item_id`` as ``version`` holds it (for HEAD: the current one)."""
    body = member_bytes(kind, version.pk, item_id)
    if body is None:
        raise NotFound(f"{_label(kind)} {item_id!r} not found in {version.repository.mnemonic}/{version.version}.")
    return body


def item_version_pk(kind: ItemKind, repository: Repository, item_id: str, uuid: str) -> int:
    """One version of an item, by its uuid: a source's own row, or one a collection holds."""
    rows = item_model(kind).objects.filter(mnemonic=item_id, uuid=uuid)
    if repository.is_source:
        rows = rows.filter(source=repository)
    else:
        rows = rows.filter(repo_versions__repository=repository)
    pk = rows.values_list("pk", flat=True).first()
    if pk is None:
        raise NotFound(f"{_label(kind)} {item_id!r} version {uuid!r} not found.")
    return pk
