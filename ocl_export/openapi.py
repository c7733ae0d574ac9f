"""The OpenAPI description of the service: every status, body and header each operation answers.

The schema class (``observability.openapi.TableSchema``) answers from the tables below: the body and
headers of each status of each operation, plus the errors any operation may give (``errors``
lists who answers what). The export resource's statuses come from both answer profiles of
:mod:`ocl_export.profiles`, so the description follows the table the views answer from.

Views are named by class, not imported: the mirror app and the read API sit beside this package.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter

from observability.openapi import (
    NULLABLE_INTEGER,
    NULLABLE_STRING,
    RETRY_AFTER,
    STRING,
    Answer,
    Operation,
    Schema,
    TableSchema,
    error,
    header,
    loose,
    query,
    ref,
)

from .profiles import V1_ANSWERS, V2_ANSWERS, Reply

COMPONENTS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": 'Every 4xx and 5xx answer: {"detail": "..."}; a rejected body also names its fields.',
        "required": ["detail"],
        "properties": {"detail": STRING, "errors": {"type": "object", "additionalProperties": True}},
        "additionalProperties": True,
    },
    "ExportJob": {
        "type": "object",
        "description": "An export job as clients follow it (the 202 of a POST or of a cancelling DELETE, /exports/jobs/:id/).",
        "required": ["id", "state", "format", "url"],
        "properties": {
            "id": {"type": "integer"},
            "state": {"type": "string", "enum": ["pending", "processing", "completed", "failed", "cancelled"]},
            "format": {"type": "string", "enum": ["tgz", "zip"]},
            "percent": {"type": "number", "nullable": True},
            "items_done": NULLABLE_INTEGER,
            "items_total": NULLABLE_INTEGER,
            "size": NULLABLE_INTEGER,
            "sha256": NULLABLE_STRING,
            "file_name": NULLABLE_STRING,
            "last_updated": NULLABLE_STRING,
            "error": NULLABLE_STRING,
            "created_on": NULLABLE_STRING,
            "started_on": NULLABLE_STRING,
            "finished_on": NULLABLE_STRING,
            "url": STRING,
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": True,
    },
    "ExportDeleted": {
        "type": "object",
        "required": ["detail", "formats"],
        "properties": {"detail": STRING, "formats": {"type": "array", "items": STRING}},
    },
    "ReleaseFeed": {
        "type": "object",
        "required": ["title", "url", "updated", "entries"],
        "properties": {
            "title": STRING,
            "url": STRING,
            "updated": NULLABLE_STRING,
            "entries": {
                "type": "array",
                "items": loose(
                    "A released version: its item counts, its exports, the delta from its predecessor",
                    id=STRING,
                    url=STRING,
                    repository=STRING,
                    concepts={"type": "integer"},
                    mappings={"type": "integer"},
                    previous=NULLABLE_STRING,
                    exports={"type": "array", "items": {"type": "object", "additionalProperties": True}},
                    delta={"type": "object", "nullable": True, "additionalProperties": True},
                ),
            },
        },
    },
    "Repository": loose("A source or collection (OCL JSON).", id=STRING, url=STRING),
    "Version": loose(
        "A repository version (OCL JSON); with includeConcepts/includeMappings it carries its items.",
        id=STRING,
        url=STRING,
        checksums=ref("Checksums"),
        checksums_pending={
            "type": "integer",
            "minimum": 0,
            "description": "With ?checksums=true: how many of the version's items have no stored checksums yet "
            "(their import's job has not run; the answer computes them meanwhile). 0 when all are stored.",
        },
        concepts={"type": "array", "items": ref("Item")},
        mappings={"type": "array", "items": ref("Item")},
        removed={"type": "array", "items": ref("Removal"), "description": "HEAD with includeRemoved=true only"},
    ),
    "Item": loose("A concept or mapping version (OCL JSON).", id=STRING, url=STRING, checksums=ref("Checksums")),
    "Checksums": {
        "type": "object",
        "description": "OCL's checksums (ocldev.checksum, MD5 hex) of the JSON served; with ?checksums=true. "
        "A version's combine its items' as oclapi2 combines a page's (null: an empty version).",
        "required": ["standard", "smart"],
        "properties": {"standard": NULLABLE_STRING, "smart": NULLABLE_STRING},
    },
    "ChecksumEntry": {
        "type": "object",
        "required": ["id", "version", "checksums"],
        "properties": {"id": STRING, "version": STRING, "checksums": ref("Checksums")},
    },
    "ChecksumListing": {
        "type": "object",
        "description": "Every item of the version (retired ones too), by row order: id, version id, checksums.",
        "required": ["concepts", "mappings"],
        "properties": {
            "concepts": {"type": "array", "items": ref("ChecksumEntry")},
            "mappings": {"type": "array", "items": ref("ChecksumEntry")},
        },
    },
    "Removal": {
        "type": "object",
        "description": "An item that left HEAD (includeRemoved=true), at its latest removal.",
        "required": ["type", "id", "url", "version_url", "removed_on"],
        "properties": {
            "type": {"type": "string", "enum": ["Concept", "Mapping"]},
            "id": STRING,
            "url": STRING,
            "version_url": STRING,
            "removed_on": {"type": "string", "format": "date-time"},
        },
    },
    "Subscription": loose("A mirror subscription and its figures.", id={"type": "integer"}),
    "NewVersion": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "maxLength": 255, "pattern": "^[A-Za-z0-9][A-Za-z0-9._~-]*$"},
            "description": STRING,
            "released": {"type": "boolean"},
            "external_id": NULLABLE_STRING,
            "extras": {"type": "object", "nullable": True, "additionalProperties": True},
        },
    },
}


# --- headers ------------------------------------------------------------------------------------


NO_STORE = header("no-cache, no-store, must-revalidate: a Location is good once")
STATUS_LINK = header('<.../exports/jobs/:id/>; rel="status": the job to follow')
LOCATION_HEADERS = {
    "Location": header("Where to go next: a one-use download link, or the archive itself"),
    "Last-Updated": header("lastUpdated of the exported version (ISO 8601, UTC)"),
    "Last-Updated-Timezone": header("Always UTC"),
    "Repr-Digest": header("sha-256=:<base64>: of the archive the Location leads to (RFC 9530), to check it by"),
    "Cache-Control": NO_STORE,
}
STATE_HEADERS = {
    "X-Export-State": header(
        "Where the export stands",
        {"type": "string", "enum": ["none", "pending", "processing", "failed", "cancelled"]},
    ),
    "Retry-After": RETRY_AFTER,
    "Link": STATUS_LINK,
    "Cache-Control": NO_STORE,
}
JOB_HEADERS = {"Link": STATUS_LINK, "Cache-Control": NO_STORE}
COUNT = {"type": "integer", "minimum": 0}
PAGE_HEADERS = {
    name: header(text, COUNT)
    for name, text in {
        "num_found": "Items of the list matching the filter, whatever the page",
        "num_returned": "Items in this body",
        "offset": "Items skipped",
        "limit": "Page size (0: every item)",
    }.items()
}
VERSION_PAGE_HEADERS = {
    f"{name}_{kind}": header(f"Of the {kind} list: {spec['description'][0].lower()}{spec['description'][1:]}", COUNT)
    for kind in ("concepts", "mappings")
    for name, spec in PAGE_HEADERS.items()
    if name.startswith("num_")
} | {"offset": PAGE_HEADERS["offset"], "limit": PAGE_HEADERS["limit"]}


# --- answers ------------------------------------------------------------------------------------


ZIPPED_READ = ("application/json", "application/zip")
BINARY = {"type": "string", "format": "binary"}
ARCHIVE_MEDIA = ("application/gzip", "application/zip")

# What any operation may answer, whoever calls it and however (see the module docstring).
COMMON = {
    400: error("A query parameter or the body is malformed (a NUL character, an unknown value...)"),
    404: error("Nothing here, or nothing the caller may see (the same answer, so nothing can be probed)"),
    429: error(
        "Past a rate limit: POST and DELETE of exports per user, anonymous reads per address when the "
        "deployment sets one; staff are never limited",
        {"Retry-After": RETRY_AFTER},
    ),
    503: error("The database (or, for POST of an export, the job queue) is unavailable", {"Retry-After": RETRY_AFTER}),
}
# Token authentication: a token that is not valid is refused on every operation that reads one.
BAD_TOKEN = error("The Authorization token is not valid (or is needed)")
FORBIDDEN = error("The caller may not do this (administrators of the repository only)")
METHOD_NOT_ALLOWED = error("Not on this version: HEAD is the live state, and latest an alias")

REPLIES: dict[Reply, Answer] = {
    Reply.STATE: Answer("No body: the state of the export is in X-Export-State", None, STATE_HEADERS),
    Reply.JOB: Answer("The export job", ref("ExportJob"), JOB_HEADERS),
    Reply.LOCATION: Answer("The export exists: a one-use download link of this service", None, LOCATION_HEADERS),
    Reply.ARCHIVE: Answer(
        "The export exists: the archive's own URL (answers 200 with the file)", None, LOCATION_HEADERS
    ),
    Reply.DELETED: Answer("What was deleted", ref("ExportDeleted")),
    Reply.EMPTY: Answer("No body"),
    Reply.ERROR: error("Not now: an export of this version is pending or processing"),
}


def export_answers(method: str) -> dict[int, Answer]:
    """The statuses the export resource gives to ``method`` in either profile (v1 and OCL v2)."""
    answers: dict[int, Answer] = {}
    for table in (V1_ANSWERS, V2_ANSWERS):
        for (verb, _situation), planned in table.items():
            if verb == method:
                answers.setdefault(planned.status, REPLIES[planned.reply])
    return answers


# --- parameters ---------------------------------------------------------------------------------


BOOLEAN = {"type": "boolean"}
COUNT_PARAM = {"type": "integer", "minimum": 0, "maximum": 2**53}
ITEM_FILTERS = [
    query("includeRetired", BOOLEAN, "Include retired items"),
    query("limit", COUNT_PARAM, "Items per list (default 25; 0: every item, streamed)"),
    query("offset", COUNT_PARAM, "Items to skip"),
    query(
        "updatedSince",
        STRING,
        "Only items updated at or after this instant: ISO 8601 date or date-time (UTC without offset), "
        "or YYYYMMDDHHMMSS; anything else is a 400",
    ),
]
CHECKSUMS = query("checksums", BOOLEAN, "true: add OCL's standard and smart checksums (as oclapi2 takes it)")
VERSION_FILTERS = [
    CHECKSUMS,
    query("includeConcepts", BOOLEAN, "Include the version's concepts"),
    query("includeMappings", BOOLEAN, "Include the version's mappings"),
    *ITEM_FILTERS,
    OpenApiParameter(
        "Compress",
        location=OpenApiParameter.HEADER,
        required=False,
        type={"type": "string", "enum": ["true", "false"]},
        description="true: the body as a zip holding export.json (OpenMRS)",
    ),
]
INCLUDE_REMOVED = query(
    "includeRemoved",
    BOOLEAN,
    "HEAD only, with includeConcepts or includeMappings: add `removed`, the included kinds' items that left "
    "HEAD at or after updatedSince (all without it) and are not back; a named version or no items is a 400",
)
FORMAT = query("format", {"type": "string", "enum": ["tgz", "zip"]}, "Archive format (default: the service's)")
FROM = OpenApiParameter(
    "from",
    location=OpenApiParameter.QUERY,
    required=True,
    type={"type": "string", "minLength": 1},
    description="The older version the delta starts from: its id, or its URL (of this repository)",
)
BAD_PAIR = error(
    "No such delta: a version not found, or a pair no delta joins (the same version, not an older one, HEAD, "
    "another repository's version); the detail says which"
)
FEED_FORMAT = query("format", {"type": "string", "enum": ["json", "atom"]}, "json (default) or atom")
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    location=OpenApiParameter.HEADER,
    required=False,
    type=STRING,
    description="The ETag of a feed held: 304 while it is unchanged",
)
FEED_ANSWERS = {
    200: Answer(
        "Released versions newest first, with their exports and the delta from each one's predecessor",
        ref("ReleaseFeed"),
        {"ETag": header("sha256 of the body, quoted")},
        ("application/json", "application/atom+xml"),
    ),
    304: Answer("The feed is as the ETag sent in If-None-Match says", None, {"ETag": header("The same ETag")}),
    401: BAD_TOKEN,
}
WAIT = query("wait", {"type": "number"}, "Hold the answer up to this many seconds (at most 25) until the state changes")

# Path segments that are alternatives in the URL patterns.
PATH_ENUMS = {
    "repo_type": ["sources", "collections"],
}


READ = {401: BAD_TOKEN}
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("RepositoryListView", "GET"): Operation(
        {200: Answer("The owner's repositories", {"type": "array", "items": ref("Repository")}), **READ}
    ),
    ("RepositoryDetailView", "GET"): Operation(
        {200: Answer("The repository (with items asked, HEAD's)", ref("Repository")), **READ},
        # a version's filters but checksums, which the repository's read does not take
        [*(parameter for parameter in VERSION_FILTERS if parameter is not CHECKSUMS), INCLUDE_REMOVED],
    ),
    ("VersionListView", "GET"): Operation(
        {200: Answer("Versions newest first, HEAD last", {"type": "array", "items": ref("Version")}), **READ},
        [CHECKSUMS],
    ),
    ("VersionChecksumsView", "GET"): Operation(
        {200: Answer("Every item's id, version id and OCL checksums, streamed", ref("ChecksumListing")), **READ}
    ),
    ("VersionListView", "POST"): Operation(
        {
            201: Answer("The new version, a snapshot of HEAD", ref("Version")),
            401: BAD_TOKEN,
            403: FORBIDDEN,
            409: error("A version of this id exists already"),
        },
        request=ref("NewVersion"),
    ),
    ("VersionDetailView", "GET"): Operation(
        {
            200: Answer(
                "The version (its items as asked): the bytes of export.json",
                ref("Version"),
                VERSION_PAGE_HEADERS,
                ZIPPED_READ,
            ),
            **READ,
        },
        [*VERSION_FILTERS, INCLUDE_REMOVED],
    ),
    ("VersionDetailView", "DELETE"): Operation(
        {204: Answer("Deleted"), 401: BAD_TOKEN, 403: FORBIDDEN, 405: METHOD_NOT_ALLOWED}
    ),
    ("ItemListView", "GET"): Operation(
        {200: Answer("One list of items", {"type": "array", "items": ref("Item")}, PAGE_HEADERS), **READ},
        [CHECKSUMS, *ITEM_FILTERS],
    ),
    ("ItemDetailView", "GET"): Operation({200: Answer("The item", ref("Item")), **READ}, [CHECKSUMS]),
    ("ExportView", "GET"): Operation({**export_answers("GET"), 401: BAD_TOKEN, 405: METHOD_NOT_ALLOWED}, [FORMAT]),
    ("ExportView", "POST"): Operation({**export_answers("POST"), 401: BAD_TOKEN, 405: METHOD_NOT_ALLOWED}, [FORMAT]),
    ("ExportView", "DELETE"): Operation(
        {**export_answers("DELETE"), 401: BAD_TOKEN, 403: FORBIDDEN, 405: METHOD_NOT_ALLOWED}, [FORMAT]
    ),
    ("DeltaView", "GET"): Operation({**export_answers("GET"), 404: BAD_PAIR, 401: BAD_TOKEN}, [FROM, FORMAT]),
    ("DeltaView", "POST"): Operation(
        {
            **export_answers("POST"),
            404: BAD_PAIR,
            401: BAD_TOKEN,
            409: error("Not now: this delta, or the full export of the version it leads to, is being made"),
        },
        [FROM, FORMAT],
    ),
    ("RepositoryFeedView", "GET"): Operation(FEED_ANSWERS, [FEED_FORMAT, IF_NONE_MATCH]),
    ("OwnerFeedView", "GET"): Operation(FEED_ANSWERS, [FEED_FORMAT, IF_NONE_MATCH]),
    ("ExportStatusView", "GET"): Operation(
        {200: Answer("The export job", ref("ExportJob"), {"Cache-Control": NO_STORE}), **READ}, [WAIT]
    ),
    ("ExportStatusView", "DELETE"): Operation(
        {
            202: Answer("The export job, now cancelled", ref("ExportJob"), JOB_HEADERS),
            401: BAD_TOKEN,
            403: FORBIDDEN,
            409: error("The job has already ended (completed, failed or cancelled): nothing to cancel"),
        }
    ),
    ("DownloadView", "GET"): Operation(
        {
            200: Answer(
                "The archive (filesystem storage)",
                BINARY,
                {"Content-Disposition": header("attachment; filename=...")},
                ARCHIVE_MEDIA,
            ),
            302: Answer(
                "The archive's presigned storage URL (S3 storage)", None, {"Location": header("Presigned URL")}
            ),
            410: error("This link has been used or has expired; ask the export resource for a new one"),
        },
    ),
    ("SubscriptionListView", "GET"): Operation(
        {200: Answer("Subscriptions", {"type": "array", "items": ref("Subscription")}), 401: BAD_TOKEN, 403: FORBIDDEN}
    ),
    ("SubscriptionDetailView", "GET"): Operation(
        {200: Answer("The subscription", ref("Subscription")), 401: BAD_TOKEN, 403: FORBIDDEN}
    ),
}


class ServiceSchema(TableSchema):
    """The service's operations, from the tables above."""

    operations = OPERATIONS
    common = COMMON
    path_enums = PATH_ENUMS


def add_components(result: Schema, generator: Any, request: Any, public: bool) -> Schema:
    """Postprocessing hook: the shared bodies that the operations refer to."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    return result
