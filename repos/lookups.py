"""From URL kwargs to owner, repository, version and item rows, with visibility applied.

The one place that finds repositories and versions from a URL: the read API's views use it, and
so do the apps above that join their own rows to a repository (the owner clauses and SQL
fragments here). Everything the caller may not see is a 404 with the same wording as something
that does not exist, so a private repository's name cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from rest_framework.exceptions import NotAuthenticated, NotFound
from rest_framework.request import Request

from repos.joined_rows import Part, fetch_all, fetch_first, select_list
from repos.models import HEAD, LATEST, ConceptVersion, MappingVersion, Organization, Repository, RepositoryVersion
from repos.representation.items import CONCEPTS, MAPPINGS, ItemKind, item_sql, member_bytes, rendered_text

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


@dataclass(frozen=True)
class OwnerClause:
    """How a joined lookup reaches the URL's owner: a join, a condition on one parameter, and the
    owner's own columns (none for ``/user/``: the caller is the owner)."""

    join: str
    where: str
    parts: tuple[Part, ...]


ORG = Part(Organization, "o")
USER = Part(get_user_model(), "u")
REPO = Part(Repository, "r")
VERSION = Part(RepositoryVersion, "v")
PREVIOUS = Part(RepositoryVersion, "p")
OWNER_CLAUSES = {
    ORGS: OwnerClause(f"JOIN {Organization._meta.db_table} o ON o.id = r.owner_org_id", "o.mnemonic = %s", (ORG,)),
    USERS: OwnerClause(f"JOIN {USER.model._meta.db_table} u ON u.id = r.owner_user_id", "u.username = %s", (USER,)),
    SELF: OwnerClause("", "r.owner_user_id = %s", ()),
}
REPOSITORY_WHERE = "r.repo_type = %s AND r.mnemonic = %s"


def repository_params(request: Request, kwargs: dict[str, Any]) -> list[Any]:
    """The parameters of an owner clause and REPOSITORY_WHERE, in that order."""
    if kwargs["owner_kind"] == SELF:
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication is required for /user/.")
        owner: Any = request.user.pk
    else:
        owner = kwargs["owner"]
    return [owner, kwargs["repo_type"], kwargs["repo"]]


def with_owner(request: Request, kind: str, repository: Repository, owner: Any | None) -> Repository:
    """Point the repository at its already loaded owner: no query when its URL is built."""
    if kind == ORGS:
        repository.owner_org = owner
    else:
        repository.owner_user = owner if kind == USERS else request.user
    return repository


@lru_cache
def _repository_sql(kind: str) -> str:
    owner = OWNER_CLAUSES[kind]
    return (
        f"SELECT {select_list((REPO, *owner.parts))} FROM {Repository._meta.db_table} r {owner.join} "
        f"WHERE {owner.where} AND {REPOSITORY_WHERE} LIMIT 1"
    )


def get_repository(request: Request, kwargs: dict[str, Any]) -> Repository:
    """One query; the owner is looked up on its own only to word a 404 when nothing matched."""
    kind = kwargs["owner_kind"]
    found = fetch_first(_repository_sql(kind), repository_params(request, kwargs), (REPO, *OWNER_CLAUSES[kind].parts))
    if found is None:
        get_owner(request, kind, kwargs.get("owner"))  # the owner's own 404 first
        raise NotFound(f"Repository {kwargs['repo']!r} not found.")
    repository = with_owner(request, kind, found[0], found[1] if len(found) > 1 else None)
    if not repository.can_view(request.user):
        raise NotFound(f"Repository {kwargs['repo']!r} not found.")
    return repository


@lru_cache
def _version_sql(kind: str, latest: bool) -> str:
    owner = OWNER_CLAUSES[kind]
    versions = RepositoryVersion._meta.db_table
    which = (
        "v.version <> %s AND v.released AND NOT v.retired ORDER BY v.created_on DESC, v.id DESC"
        if latest
        else "v.version = %s"
    )
    return (
        f"SELECT {select_list((VERSION, PREVIOUS, REPO, *owner.parts))} FROM {versions} v "
        f"LEFT JOIN {versions} p ON p.id = v.previous_version_id "
        f"JOIN {Repository._meta.db_table} r ON r.id = v.repository_id {owner.join} "
        f"WHERE {owner.where} AND {REPOSITORY_WHERE} AND {which} LIMIT 1"
    )


def get_repository_version(request: Request, kwargs: dict[str, Any], name: str) -> RepositoryVersion:
    """The URL's version with its repository (and owner, and predecessor) in one query.

    When that finds nothing visible, the step-by-step lookup runs to raise the precise 404 (or to
    create a repository's missing HEAD).
    """
    kind = kwargs["owner_kind"]
    latest = name == LATEST
    params = [*repository_params(request, kwargs), HEAD if latest else name]
    found = fetch_first(_version_sql(kind, latest), params, (VERSION, PREVIOUS, REPO, *OWNER_CLAUSES[kind].parts))
    if found is not None:
        version, previous, repository = found[:3]
        with_owner(request, kind, repository, found[3] if len(found) > 3 else None)
        if repository.can_view(request.user):
            version.previous_version = previous
            return attach(version, repository)
    return get_version(get_repository(request, kwargs), name)


def attach(version: RepositoryVersion, repository: Repository) -> RepositoryVersion:
    """Point a version (and its predecessor) at the already loaded repository: no query per URL."""
    version.repository = repository
    previous = version.previous_version
    if previous is not None and previous.repository_id == repository.pk:
        previous.repository = repository
    return version


def named_versions(repository: Repository) -> QuerySet[RepositoryVersion]:
    """Every version but HEAD, newest first (id breaks ties between versions made in one instant)."""
    return repository.versions.exclude(version=HEAD).select_related("previous_version").order_by("-created_on", "-id")


VERSIONS_SQL = (
    f"SELECT {select_list((VERSION, PREVIOUS))} FROM {RepositoryVersion._meta.db_table} v "
    f"LEFT JOIN {RepositoryVersion._meta.db_table} p ON p.id = v.previous_version_id "
    "WHERE v.repository_id = %s ORDER BY v.created_on DESC, v.id DESC"
)


def with_head(repository: Repository) -> list[RepositoryVersion]:
    """Every version, HEAD included, in the order of :func:`named_versions`, each with its
    predecessor, pointed at ``repository``: one query."""
    versions = []
    for version, previous in fetch_all(VERSIONS_SQL, [repository.pk], (VERSION, PREVIOUS)):
        version.previous_version = previous
        versions.append(attach(version, repository))
    return versions


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


@lru_cache
def _member_sql(kind_key: str, owner_kind: str, repo_type: str) -> str:
    """A version's item by id, joined from the item's side.

    In a source the item's rows are the source's own, so the lookup starts at the unique
    (source, mnemonic, uuid) index and probes the version's membership by its key for each of the
    item's few rows: a handful of index reads whatever the version's size. A collection holds rows
    of other sources, which no index reaches by mnemonic alone, so its members are filtered.
    """
    kind = CONCEPTS if kind_key == CONCEPTS.key else MAPPINGS
    owner = OWNER_CLAUSES[owner_kind]
    own_rows = "AND i.source_id = r.id " if repo_type == "sources" else ""
    return (
        f"SELECT {select_list((REPO, *owner.parts))}, i.id, {item_sql()} "
        f"FROM {RepositoryVersion._meta.db_table} v JOIN {Repository._meta.db_table} r ON r.id = v.repository_id "
        f"{owner.join} JOIN {kind.table} i ON i.mnemonic = %s {own_rows}"
        f"JOIN {kind.membership} m ON m.repositoryversion_id = v.id AND m.{kind.member_column} = i.id "
        f"WHERE {owner.where} AND {REPOSITORY_WHERE} AND v.version = %s "
        "ORDER BY i.id DESC LIMIT 1"
    )


def get_member_body(request: Request, kwargs: dict[str, Any], kind: ItemKind, name: str) -> bytes:
    """``.../:version/concepts/:id/`` (or HEAD's): the item's bytes with the repository's visibility
    checked, in one query; anything unusual (``latest``, a miss) takes the step-by-step lookup,
    which words the 404."""
    if name != LATEST:
        owner_kind = kwargs["owner_kind"]
        params = [kwargs["item"], *repository_params(request, kwargs), name]
        sql = _member_sql(kind.key, owner_kind, kwargs["repo_type"])
        found = fetch_first(sql, params, (REPO, *OWNER_CLAUSES[owner_kind].parts))
        if found is not None and found[0].can_view(request.user):
            pk, text = found[-2:]
            return rendered_text(kind, pk, text)
    return member_body(kind, get_repository_version(request, kwargs, name), kwargs["item"])


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
