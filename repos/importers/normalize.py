"""Mapping the v1 and v2 shapes of OCL export JSON onto our model fields.

Metadata becomes a :class:`RepoPlan` (who owns what, which version); each item becomes one flat
tuple in the column order of the staging tables (``fields`` of :mod:`repos.representation.items`),
so the hot path builds no model instances. Names, descriptions and extras go through the
representation's canonical writers, the one shape the export emits verbatim.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.utils import timezone

from repos.importers.errors import ImportFileError
from repos.models import PUBLIC_ACCESS_CHOICES, Repository, new_uuid
from repos.representation.shapes import descriptions_json, extras_json, names_json

KNOWN_TYPES = {
    "Source": (Repository.SOURCES, False),
    "Source Version": (Repository.SOURCES, True),
    "Collection": (Repository.COLLECTIONS, False),
    "Collection Version": (Repository.COLLECTIONS, True),
}
OWNER_TYPES = {"orgs": "Organization", "users": "User", "Organization": "Organization", "User": "User"}
PUBLIC_ACCESS = {value for value, _ in PUBLIC_ACCESS_CHOICES}
REPO_URL = re.compile(r"^/(orgs|users)/([^/]+)/(sources|collections)/([^/]+)/")


# Model fields in staging order; ``checksum`` is last and digests the content fields before it.
@dataclass
class RepoPlan:
    """What the file's metadata says: the owner, the repository and the version to write."""

    repo_type: str
    owner: str
    owner_type: str  # "Organization" or "User"
    mnemonic: str
    repo_fields: dict[str, Any]
    version_id: str | None  # None: decided from the file name or the items
    version_fields: dict[str, Any] = field(default_factory=dict)
    references: list[Any] | None = None

    @property
    def url(self) -> str:
        segment = "orgs" if self.owner_type == "Organization" else "users"
        return f"/{segment}/{self.owner}/{self.repo_type}/{self.mnemonic}/"


def parse_time(value: Any, default: datetime | None = None) -> datetime | None:
    """ISO 8601 text to an aware datetime; naive values (v1 files) are UTC."""
    if value is None or value == "":
        return default
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad timestamp {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def text(value: Any) -> str:
    return "" if value is None else str(value)


def last_segment(url: str | None) -> str | None:
    return url.rstrip("/").rsplit("/", 1)[-1] if url else None


def _shared_fields(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The fields a repository and a version read alike: extras, external id, audit stamps."""
    extras = data.get("extras")
    return {
        "extras": extras if isinstance(extras, dict) else {},
        "external_id": data.get("external_id"),
        "created_on": parse_time(data.get("created_on"), now),
        "updated_on": parse_time(data.get("updated_on"), now),
        "created_by": text(data.get("created_by")),
        "updated_by": text(data.get("updated_by")),
    }


def plan_from_metadata(meta: dict[str, Any], owner_type: str | None = None) -> RepoPlan:
    type_name = meta.get("type")
    if type_name not in KNOWN_TYPES:
        known = ", ".join(KNOWN_TYPES)
        raise ImportFileError(f"unknown export type {type_name!r} (expected one of: {known})")
    repo_type, is_version = KNOWN_TYPES[type_name]
    label = "source" if repo_type == Repository.SOURCES else "collection"
    nested = meta.get(label)
    repo = nested if is_version and isinstance(nested, dict) else meta
    url = repo.get("url") or meta.get("url") or meta.get("collectionUrl") or ""
    parsed = REPO_URL.match(url)
    mnemonic = repo.get("id") if repo is not meta else meta.get("id")
    if is_version:
        mnemonic = repo.get("id") if repo is not meta else meta.get("short_code")
    mnemonic = mnemonic or meta.get("short_code") or (parsed.group(4) if parsed else None)
    owner = meta.get("owner") or repo.get("owner") or (parsed.group(2) if parsed else None)
    file_owner_type = meta.get("owner_type") or repo.get("owner_type")
    if not file_owner_type and parsed:
        file_owner_type = OWNER_TYPES[parsed.group(1)]
    resolved_owner_type = OWNER_TYPES.get(owner_type or file_owner_type or "Organization")
    if not mnemonic or not owner or resolved_owner_type is None:
        raise ImportFileError(f"the {type_name} metadata does not say its id, owner and owner type")
    now = timezone.now()
    supported = repo.get("supported_locales") or []
    if isinstance(supported, str):
        supported = [locale.strip() for locale in supported.split(",") if locale.strip()]
    public_access = repo.get("public_access") or meta.get("public_access") or "View"
    repo_fields = {
        "uuid": text(repo.get("uuid")) or new_uuid(),
        "name": text(repo.get("name")) or mnemonic,
        "full_name": text(repo.get("full_name")),
        "description": text(repo.get("description")),
        "type_name": text(repo.get(f"{label}_type")),
        "custom_validation_schema": repo.get("custom_validation_schema"),
        "public_access": public_access if public_access in PUBLIC_ACCESS else "View",
        "default_locale": repo.get("default_locale") or "en",
        "supported_locales": supported,
        "website": repo.get("website"),
        **_shared_fields(repo, now),
    }
    version_fields: dict[str, Any] = {}
    version_id = None
    if is_version:
        version_id = meta.get("id") or meta.get("version")
        if not version_id:
            raise ImportFileError(f"the {type_name} metadata has no version id")
        version_fields = {
            "uuid": text(meta.get("uuid")) or None,
            "description": text(meta.get("description")),
            "released": bool(meta.get("released")),
            "retired": bool(meta.get("retired")),
            **_shared_fields(meta, now),
        }
        if "previous_version_url" in meta:  # absent: the importer picks the newest version here
            version_fields["previous_version_url"] = meta["previous_version_url"] or ""
    references = meta.get("references") if repo_type == Repository.COLLECTIONS else None
    return RepoPlan(
        repo_type=repo_type,
        owner=str(owner),
        owner_type=resolved_owner_type,
        mnemonic=str(mnemonic),
        repo_fields=repo_fields,
        version_id=str(version_id) if version_id else None,
        version_fields=version_fields,
        references=references if isinstance(references, list) else None,
    )


# --- items ----------------------------------------------------------------------------------


def digest(*values: Any) -> str:
    """A short digest of content fields; JSON-encoding them keeps ("ab", "c") apart from ("a", "bc")."""
    return hashlib.blake2b(orjson.dumps(values), digest_size=16).hexdigest()


def concept_source_url(item: dict[str, Any]) -> str | None:
    if item.get("source_url"):
        return item["source_url"]
    return _url_from_parts(item.get("owner_type"), item.get("owner"), item.get("source"))


def mapping_source_url(item: dict[str, Any]) -> str | None:
    url = item.get("url") or ""
    marker = url.rfind("/mappings/")
    if marker > 0:
        return url[: marker + 1]
    return _url_from_parts(item.get("owner_type"), item.get("owner"), item.get("source"))


def _url_from_parts(owner_type: str | None, owner: str | None, source: str | None) -> str | None:
    if not owner or not source:
        return None
    segment = "users" if owner_type == "User" else "orgs"
    return f"/{segment}/{owner}/sources/{source}/"


def concept_row(item: dict[str, Any]) -> tuple:
    """One concept in ``CONCEPTS.fields`` order (raises KeyError without an ``id``)."""
    get = item.get
    mnemonic = str(item["id"])
    uuid = text(get("version") or get("uuid")) or None
    names = names_json(get("names"))
    descriptions = descriptions_json(get("descriptions"))
    extras = extras_json(get("extras"))
    created_on = parse_time(get("created_on"))
    updated_on = parse_time(get("updated_on"), created_on) or timezone.now()
    external_id = get("external_id")
    concept_class = get("concept_class")
    datatype = get("datatype")
    display_name = get("display_name")
    display_locale = get("display_locale")
    retired = bool(get("retired"))
    retire_reason = get("retire_reason")
    checksum = digest(
        external_id, concept_class, datatype, display_name, display_locale, names, descriptions, extras,
        retired, retire_reason,
    )  # fmt: skip
    latest = get("is_latest_version")
    return (
        mnemonic,
        uuid or checksum,
        external_id,
        concept_class,
        datatype,
        display_name,
        display_locale,
        names,
        descriptions,
        extras,
        retired,
        retire_reason,
        created_on or updated_on,
        updated_on,
        parse_time(get("version_created_on"), created_on or updated_on),
        text(get("version_created_by")),
        get("update_comment"),
        True if latest is None else bool(latest),
        last_segment(get("previous_version_url")),
        checksum,
    )


def mapping_row(item: dict[str, Any]) -> tuple:
    """One mapping in ``MAPPINGS.fields`` order; v1's created_at/updated_at and missing uuid handled."""
    get = item.get
    item_id = str(item["id"])
    url = get("url")
    # v1 mapping ids are mongo ids and the URL ends with the same id; the URL wins if they ever
    # differ, because the representation rebuilds the URL from the mnemonic.
    mnemonic = last_segment(url) if url and "/mappings/" in url else item_id
    created_on = parse_time(get("created_on") or get("created_at"))
    updated_on = parse_time(get("updated_on") or get("updated_at"), created_on) or timezone.now()
    sort_weight = get("sort_weight")
    content = (
        get("external_id"), bool(get("retired")), get("retire_reason"), text(get("map_type")),
        get("from_concept_code"), get("from_concept_name"), get("from_concept_url"),
        get("to_concept_code"), get("to_concept_name"), get("to_concept_url"),
        get("from_source_owner"), get("from_source_owner_type"), get("from_source_url"), get("from_source_name"),
        get("to_source_owner"), get("to_source_owner_type"), get("to_source_url"), get("to_source_name"),
        None if sort_weight is None else float(sort_weight), extras_json(get("extras")),
    )  # fmt: skip
    checksum = digest(*content)
    latest = get("is_latest_version")
    return (
        mnemonic,
        text(get("version") or get("uuid")) or item_id,
        *content,
        get("update_comment"),
        created_on or updated_on,
        updated_on,
        text(get("created_by")),
        text(get("updated_by")),
        True if latest is None else bool(latest),
        checksum,
    )
