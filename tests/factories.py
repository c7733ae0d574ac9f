"""Small builders of terminology content through the ORM, for any test of the project.

They behave like the service does: a concept or mapping change writes a new immutable version
row, flips the previous one's ``is_latest_version`` and swaps it in HEAD; a named version is a
``snapshot_head``. Everything has a sensible default, so a test states only what it checks::

    org = make_org("CIEL")
    source = make_source(org, "CIEL")                      # HEAD exists
    concept = add_concept(source, "1065", display_name="Yes")
    add_mapping(source, "M1", from_concept=concept, to_concept=concept)
    v1 = make_version(source, "v1")                         # released snapshot of HEAD
    add_concept(source, "1065", retired=True)              # a new version in HEAD, not in v1

Owners are an ``Organization`` or a user; timestamps are aware datetimes (default: now).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from rest_framework.authtoken.models import Token

from repos.models import (
    ConceptVersion,
    MappingVersion,
    Membership,
    Organization,
    Repository,
    RepositoryVersion,
    new_uuid,
    snapshot_head,
)
from repos.representation.shapes import descriptions_json, extras_json, names_json

Owner = Organization | AbstractBaseUser


def make_user(username: str, *, org: Organization | None = None, role: str = Membership.MEMBER, **extra: Any) -> Any:
    """A user with the API token ``<username>-token`` padded with zeros to 40 characters."""
    user = get_user_model().objects.create_user(username=username, password="pw", **extra)
    Token.objects.create(user=user, key=f"{username}-token".ljust(40, "0")[:40])
    if org is not None:
        Membership.objects.create(organization=org, user=user, role=role)
    return user


def make_org(mnemonic: str = "CIEL", **fields: Any) -> Organization:
    return Organization.objects.get_or_create(mnemonic=mnemonic, defaults=fields)[0]


def _owner_fields(owner: Owner) -> dict[str, Any]:
    return {"owner_org": owner} if isinstance(owner, Organization) else {"owner_user": owner}


def make_repository(owner: Owner, mnemonic: str, repo_type: str, **fields: Any) -> Repository:
    fields.setdefault("name", mnemonic)
    fields.setdefault("full_name", f"{mnemonic} full name")
    fields.setdefault("type_name", "Dictionary" if repo_type == Repository.SOURCES else "Subset")
    fields.setdefault("supported_locales", ["en"])
    repository = Repository.objects.create(repo_type=repo_type, mnemonic=mnemonic, **_owner_fields(owner), **fields)
    repository.head()
    return repository


def make_source(owner: Owner, mnemonic: str = "CIEL", **fields: Any) -> Repository:
    """A source with its HEAD; ``public_access="None"`` makes it private."""
    return make_repository(owner, mnemonic, Repository.SOURCES, **fields)


def make_collection(owner: Owner, mnemonic: str = "RefApp", **fields: Any) -> Repository:
    return make_repository(owner, mnemonic, Repository.COLLECTIONS, **fields)


def _replace_in_head(repository: Repository, item: ConceptVersion | MappingVersion, previous: Any) -> None:
    head = repository.head()
    members = head.concepts if isinstance(item, ConceptVersion) else head.mappings
    if previous is not None:
        members.remove(previous)
    members.add(item)


def add_concept(
    source: Repository,
    mnemonic: str,
    *,
    display_name: str | None = None,
    names: list[dict] | None = None,
    descriptions: list[dict] | None = None,
    extras: dict | None = None,
    updated_on: datetime | None = None,
    **fields: Any,
) -> ConceptVersion:
    """A new version of concept ``mnemonic`` in ``source``'s HEAD (the first one if it is new).

    Any other ``ConceptVersion`` field may be given (``retired=True``, ``concept_class``, ``uuid``...).
    """
    previous = ConceptVersion.objects.filter(source=source, mnemonic=mnemonic, is_latest_version=True).first()
    now = updated_on or timezone.now()
    display_name = display_name or (previous.display_name if previous else f"Concept {mnemonic}")
    if names is None:
        names = [{"uuid": new_uuid(), "name": display_name, "locale": "en", "locale_preferred": True}]
        names[0]["name_type"] = "FULLY_SPECIFIED"
    fields.setdefault("uuid", new_uuid())
    fields.setdefault("concept_class", "Misc")
    fields.setdefault("datatype", "N/A")
    fields.setdefault("created_on", previous.created_on if previous else now)
    concept = ConceptVersion.objects.create(
        source=source,
        mnemonic=mnemonic,
        display_name=display_name,
        display_locale="en",
        names=names_json(names),
        descriptions=descriptions_json(descriptions),
        extras=extras_json(extras),
        updated_on=now,
        version_created_on=now,
        previous_version_uuid=previous.uuid if previous else None,
        **fields,
    )
    if previous is not None:
        ConceptVersion.objects.filter(pk=previous.pk).update(is_latest_version=False)
    _replace_in_head(source, concept, previous)
    return concept


def add_mapping(
    source: Repository,
    mnemonic: str,
    *,
    from_concept: ConceptVersion | None = None,
    to_concept: ConceptVersion | None = None,
    to_concept_code: str | None = None,
    map_type: str = "SAME-AS",
    extras: dict | None = None,
    updated_on: datetime | None = None,
    **fields: Any,
) -> MappingVersion:
    """A new version of mapping ``mnemonic``; ``to_concept_code`` alone maps to an external code."""
    previous = MappingVersion.objects.filter(source=source, mnemonic=mnemonic, is_latest_version=True).first()
    now = updated_on or timezone.now()
    for end, concept in (("from", from_concept), ("to", to_concept)):
        if concept is not None:
            owner = concept.source
            fields.setdefault(f"{end}_concept_code", concept.mnemonic)
            fields.setdefault(f"{end}_concept_name", concept.display_name)
            fields.setdefault(f"{end}_concept_url", f"{owner.url}concepts/{concept.mnemonic}/")
            fields.setdefault(f"{end}_source_owner", owner.owner_mnemonic)
            fields.setdefault(f"{end}_source_owner_type", owner.owner_type)
            fields.setdefault(f"{end}_source_url", owner.url)
            fields.setdefault(f"{end}_source_name", owner.mnemonic)
    if to_concept_code is not None:
        fields["to_concept_code"] = to_concept_code
    fields.setdefault("uuid", new_uuid())
    fields.setdefault("created_on", previous.created_on if previous else now)
    mapping = MappingVersion.objects.create(
        source=source, mnemonic=mnemonic, map_type=map_type, extras=extras_json(extras), updated_on=now, **fields
    )
    if previous is not None:
        MappingVersion.objects.filter(pk=previous.pk).update(is_latest_version=False)
    _replace_in_head(source, mapping, previous)
    return mapping


def add_to_collection(collection: Repository, *items: ConceptVersion | MappingVersion) -> None:
    """Put concept or mapping versions (of any source) into a collection's HEAD."""
    head = collection.head()
    for item in items:
        (head.concepts if isinstance(item, ConceptVersion) else head.mappings).add(item)


def make_version(
    repository: Repository, version_id: str, *, released: bool = True, created_on: datetime | None = None, **fields: Any
) -> RepositoryVersion:
    """A snapshot of HEAD, released unless told otherwise (``snapshot_head``'s keywords pass through)."""
    return snapshot_head(repository, version_id, released=released, created_on=created_on, **fields)
