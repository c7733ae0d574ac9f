"""The contract's JSON shapes: versions, repositories, concepts, mappings, and the stored text of
names, descriptions and extras.

Every body the service writes is built from these functions (the read API, the export's
``export.json``, the renderings stored with each item), so one shape has one representation.
Concepts and mappings are built from a row of plain SQL columns (an item kind's ``columns``, see
:mod:`repos.representation.items`), never from model instances.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from repos.models import Repository, RepositoryVersion
from repos.representation.encoding import utc

# --- names and descriptions: one canonical shape, applied when they are written --------------

NAME_KEYS = ("uuid", "name", "external_id", "type", "locale", "locale_preferred", "name_type")
DESCRIPTION_KEYS = ("uuid", "description", "external_id", "type", "locale", "locale_preferred", "description_type")


def _canonical_localized(items: Iterable[dict] | None, keys: tuple[str, ...], type_name: str) -> list[dict]:
    out = []
    for item in items or []:
        row = {key: item.get(key) for key in keys}
        row["type"] = type_name
        row["locale_preferred"] = bool(item.get("locale_preferred") or False)
        out.append(row)
    return out


def names_json(names: Iterable[dict] | None) -> str:
    """The stored JSON text of a concept's names, keys in the contract's order."""
    return orjson.dumps(_canonical_localized(names, NAME_KEYS, "ConceptName")).decode()


def descriptions_json(descriptions: Iterable[dict] | None) -> str:
    return orjson.dumps(_canonical_localized(descriptions, DESCRIPTION_KEYS, "ConceptDescription")).decode()


def extras_json(extras: dict | None) -> str:
    """Extras are always an object (v1 files may say null)."""
    return orjson.dumps(extras if isinstance(extras, dict) else {}, option=orjson.OPT_SORT_KEYS).decode()


# --- owners and repositories ----------------------------------------------------------------


@dataclass(frozen=True)
class SourceInfo:
    """What every item of one source repeats: computed once per source, not once per row."""

    source: str
    source_url: str
    owner: str
    owner_type: str
    owner_url: str


def source_info(repository: Repository) -> SourceInfo:
    return SourceInfo(
        source=repository.mnemonic,
        source_url=repository.url,
        owner=repository.owner_mnemonic,
        owner_type=repository.owner_type,
        owner_url=repository.owner_url,
    )


class SourceInfoCache(dict):
    def __missing__(self, source_id: int) -> SourceInfo:
        info = source_info(Repository.objects.select_related("owner_org", "owner_user").get(pk=source_id))
        self[source_id] = info
        return info


def repository_dict(repository: Repository) -> dict[str, Any]:
    """A source or collection (its live HEAD metadata), as nested in a version and at its URL."""
    url = repository.url
    return {
        "type": repository.type_label,
        "uuid": repository.uuid,
        "id": repository.mnemonic,
        "short_code": repository.mnemonic,
        "name": repository.name,
        "full_name": repository.full_name,
        "description": repository.description,
        f"{repository.type_label.lower()}_type": repository.type_name,
        "custom_validation_schema": repository.custom_validation_schema,
        "public_access": repository.public_access,
        "default_locale": repository.default_locale,
        "supported_locales": repository.supported_locales,
        "website": repository.website,
        "url": url,
        "owner": repository.owner_mnemonic,
        "owner_type": repository.owner_type,
        "owner_url": repository.owner_url,
        "created_on": utc(repository.created_on),
        "updated_on": utc(repository.updated_on),
        "created_by": repository.created_by,
        "updated_by": repository.updated_by,
        "extras": repository.extras if isinstance(repository.extras, dict) else {},
        "external_id": repository.external_id,
        "versions_url": f"{url}versions/",
        "concepts_url": f"{url}concepts/",
        "mappings_url": f"{url}mappings/",
    }


def version_dict(version: RepositoryVersion) -> dict[str, Any]:
    """A repository version's own keys, in the contract's order, ending with the nested repository."""
    repository = version.repository
    label = repository.type_label
    url = repository.url
    version_url = version.url
    previous = version.previous_version
    return {
        "type": f"{label} Version",
        "uuid": version.uuid,
        "id": version.version,
        "short_code": repository.mnemonic,
        "name": repository.name,
        "full_name": repository.full_name,
        "description": version.description,
        f"{label.lower()}_type": repository.type_name,
        "custom_validation_schema": repository.custom_validation_schema,
        "public_access": repository.public_access,
        "default_locale": repository.default_locale,
        "supported_locales": repository.supported_locales,
        "website": repository.website,
        "url": url,
        "owner": repository.owner_mnemonic,
        "owner_type": repository.owner_type,
        "owner_url": repository.owner_url,
        "retired": version.retired,
        "version_url": version_url,
        "previous_version_url": previous.url if previous is not None else version.previous_version_url,
        "created_on": utc(version.created_on),
        "updated_on": utc(version.updated_on),
        "created_by": version.created_by,
        "updated_by": version.updated_by,
        "extras": version.extras if isinstance(version.extras, dict) else {},
        "external_id": version.external_id,
        "version": version.version,
        "released": version.released,
        "concepts_url": f"{version_url}concepts/",
        "mappings_url": f"{version_url}mappings/",
        label.lower(): repository_dict(repository),
    }


def versions_list_item(version: RepositoryVersion) -> dict[str, Any]:
    """An entry of ``GET .../versions``: the version without its nested repository."""
    data = version_dict(version)
    data.pop(version.repository.type_label.lower())
    return data


# --- concepts and mappings: the dicts built from their rows ---------------------------------

Fragment = orjson.Fragment


def concept_item(row: tuple, sources: SourceInfoCache) -> dict[str, Any]:
    (
        _pk, source_id, mnemonic, uuid, external_id, concept_class, datatype, display_name, display_locale,
        names, descriptions, extras, retired, retire_reason, created_on, updated_on, version_created_on,
        version_created_by, update_comment, is_latest_version, previous_version_uuid,
    ) = row  # fmt: skip
    info = sources[source_id]
    url = f"{info.source_url}concepts/{mnemonic}/"
    return {
        "type": "Concept",
        "uuid": uuid,
        "id": mnemonic,
        "external_id": external_id,
        "concept_class": concept_class,
        "datatype": datatype,
        "display_name": display_name,
        "display_locale": display_locale,
        "names": Fragment(names),
        "descriptions": Fragment(descriptions),
        "extras": Fragment(extras),
        "retired": bool(retired),
        "retire_reason": retire_reason,
        "source": info.source,
        "source_url": info.source_url,
        "owner": info.owner,
        "owner_type": info.owner_type,
        "owner_url": info.owner_url,
        "version": uuid,
        "created_on": utc(created_on),
        "updated_on": utc(updated_on),
        "version_created_on": utc(version_created_on),
        "version_created_by": version_created_by,
        "update_comment": update_comment,
        "is_latest_version": bool(is_latest_version),
        "url": url,
        "version_url": f"{url}{uuid}/",
        "previous_version_url": f"{url}{previous_version_uuid}/" if previous_version_uuid else None,
    }


def mapping_item(row: tuple, sources: SourceInfoCache) -> dict[str, Any]:
    (
        _pk, source_id, mnemonic, uuid, external_id, retired, retire_reason, map_type,
        from_concept_code, from_concept_name, from_concept_url, to_concept_code, to_concept_name,
        to_concept_url, from_source_owner, from_source_owner_type, from_source_url, from_source_name,
        to_source_owner, to_source_owner_type, to_source_url, to_source_name, sort_weight, extras,
        update_comment, created_on, updated_on, created_by, updated_by, is_latest_version,
    ) = row  # fmt: skip
    info = sources[source_id]
    url = f"{info.source_url}mappings/{mnemonic}/"
    return {
        "type": "Mapping",
        "uuid": uuid,
        "id": mnemonic,
        "external_id": external_id,
        "retired": bool(retired),
        "retire_reason": retire_reason,
        "map_type": map_type,
        "source": info.source,
        "owner": info.owner,
        "owner_type": info.owner_type,
        "owner_url": info.owner_url,
        "from_concept_code": from_concept_code,
        "from_concept_name": from_concept_name,
        "from_concept_url": from_concept_url,
        "to_concept_code": to_concept_code,
        "to_concept_name": to_concept_name,
        "to_concept_url": to_concept_url,
        "from_source_owner": from_source_owner,
        "from_source_owner_type": from_source_owner_type,
        "from_source_url": from_source_url,
        "from_source_name": from_source_name,
        "to_source_owner": to_source_owner,
        "to_source_owner_type": to_source_owner_type,
        "to_source_url": to_source_url,
        "to_source_name": to_source_name,
        "url": url,
        "version": uuid,
        "version_url": f"{url}{uuid}/",
        "is_latest_version": bool(is_latest_version),
        "sort_weight": sort_weight,
        "extras": Fragment(extras),
        "update_comment": update_comment,
        "created_on": utc(created_on),
        "updated_on": utc(updated_on),
        "created_by": created_by,
        "updated_by": updated_by,
    }
