"""The export rows the hot requests read, each with its version and repository in one statement.

A GET of a completed export (every client polls it; every answer is a 303) and a job's status
link are answered from one joined row. The statements are built once (``repos.joined_rows``
says why: compiling them with the ORM cost more CPU than the rest of the request).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from rest_framework.request import Request

from foundation.archive import FORMATS
from repos.joined_rows import Part, fetch_first, select_list
from repos.lookups import (
    ORG,
    OWNER_CLAUSES,
    REPO,
    REPOSITORY_WHERE,
    USER,
    VERSION,
    repository_params,
    with_owner,
)
from repos.models import HEAD, LATEST, Repository, RepositoryVersion

from .models import Export, ExportState

EXPORT = Part(Export, "e")
JOINS = (
    f"FROM {Export._meta.db_table} e JOIN {RepositoryVersion._meta.db_table} v ON v.id = e.version_id "
    f"JOIN {Repository._meta.db_table} r ON r.id = v.repository_id"
)


@lru_cache
def _completed_sql(kind: str) -> str:
    owner = OWNER_CLAUSES[kind]
    return (
        f"SELECT {select_list((EXPORT, VERSION, REPO, *owner.parts))} {JOINS} {owner.join} "
        f"WHERE {owner.where} AND {REPOSITORY_WHERE} AND v.version = %s AND e.format = %s AND e.state = %s "
        "AND e.base_id IS NULL LIMIT 1"
    )


def completed_export(request: Request, kwargs: dict[str, Any]) -> Export | None:
    """GET's common case in one query: the completed export of a named version (never HEAD, whose
    exports go out of date) whose repository the caller may see. None for anything else, which
    the step-by-step lookup then answers."""
    fmt = request.query_params.get("format") or settings.EXPORT_DEFAULT_FORMAT
    if fmt not in FORMATS or kwargs["version"] in (HEAD, LATEST):
        return None
    kind = kwargs["owner_kind"]
    params = [*repository_params(request, kwargs), kwargs["version"], fmt, ExportState.COMPLETED.value]
    found = fetch_first(_completed_sql(kind), params, (EXPORT, VERSION, REPO, *OWNER_CLAUSES[kind].parts))
    if found is None:
        return None
    export, version, repository = found[:3]
    version.repository = with_owner(request, kind, repository, found[3] if len(found) > 3 else None)
    export.version = version
    return export if repository.can_view(request.user) else None


STATUS_PARTS = (EXPORT, VERSION, REPO, ORG, USER)
STATUS_SQL = (
    f"SELECT {select_list(STATUS_PARTS)} {JOINS} "
    f"LEFT JOIN {ORG.model._meta.db_table} o ON o.id = r.owner_org_id "
    f"LEFT JOIN {USER.model._meta.db_table} u ON u.id = r.owner_user_id WHERE e.id = %s"
)


def export_with_repository(pk: int) -> Export | None:
    """An export with its version, repository and owner (what its description names), one query."""
    found = fetch_first(STATUS_SQL, [pk], STATUS_PARTS)
    if found is None:
        return None
    export, version, repository, org, user = found
    repository.owner_org, repository.owner_user = org, user
    version.repository = repository
    export.version = version
    return export
