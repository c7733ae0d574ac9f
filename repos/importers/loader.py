"""Importing one OCL export file: metadata pass, streamed staging, set-based merge, the version.

Everything happens in one transaction: a damaged file leaves the database exactly as it was.

A *partial* import (``partial=True``) applies a list of changes to HEAD and writes no version:
the body of an ``updatedSince`` read, which a mirror fetches from an upstream server. Its items
replace their current version in HEAD (retired ones included), items it does not name stay as
they are, and an item delivered again unchanged matches its existing row and changes nothing.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from tqdm import tqdm

from repos import checksum_jobs, signals
from repos.importers import merge
from repos.importers.errors import ImportFileError
from repos.importers.normalize import (
    RepoPlan,
    concept_row,
    concept_source_url,
    mapping_row,
    mapping_source_url,
    plan_from_metadata,
)
from repos.importers.owners import SourceResolver, ensure_repository
from repos.importers.reader import DAMAGED, ITEM_ARRAYS, TRAILING_KEYS, describe, open_export, read_file_metadata
from repos.importers.removals import (
    MEMBERS,
    REMOVED,
    ListWriter,
    keep_only_staged,
    remove_listed,
    remove_unlisted,
)
from repos.importers.scanner import ARRAY, VALUE, ScanLimitError, iter_items
from repos.importers.staging import RowWriter, create_staging, index_staging
from repos.models import HEAD, Repository, RepositoryVersion, copy_membership
from repos.representation.items import CONCEPTS, KINDS, MAPPINGS, ItemKind
from repos.representation.rendering import render_parts, render_pending
from repos.representation.shapes import SourceInfoCache, source_info

# [:repo]_[:version].[:14-digit timestamp].(tgz|zip|json), the name the export service gives archives.
EXPORT_FILE_NAME = re.compile(r"^(?P<repo>[^_]+)_(?P<version>.+)\.(?P<stamp>\d{14})\.(?:tgz|tar\.gz|zip|json)$")
IMPORT_WORK_MEM = "128MB"
CREATED = "created"
UNCHANGED = "unchanged"
CHANGED = "changed"  # a partial import that wrote new rows into HEAD


@dataclass
class ImportSummary:
    path: str
    repository: str  # the repository URL
    version: str
    status: str  # "created" or "unchanged"
    concepts: int = 0
    mappings: int = 0
    new_concepts: int = 0
    new_mappings: int = 0
    seconds: float = 0.0
    placeholders: list[str] = field(default_factory=list)
    removed: int = 0  # items that left HEAD (a newest version's import, a diff's removed or members list)
    lists_removed: bool = False  # a diff that had a removed list (an upstream that keeps removals)
    newest: datetime | None = None  # the newest updated_on among the file's items
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for benchmarks

    @property
    def items(self) -> int:
        return self.concepts + self.mappings

    def __str__(self) -> str:
        rate = self.items / self.seconds if self.seconds else 0.0
        extra = f"; placeholder sources: {', '.join(self.placeholders)}" if self.placeholders else ""
        return (
            f"{self.repository}{self.version}/ {self.status}: {self.concepts} concepts ({self.new_concepts} new), "
            f"{self.mappings} mappings ({self.new_mappings} new) in {self.seconds:.1f} s ({rate:,.0f} items/s){extra}"
        )


def version_from_file_name(path: Path) -> str | None:
    match = EXPORT_FILE_NAME.match(path.name)
    return match.group("version") if match else None


def import_file(
    path: str | Path,
    *,
    version: str | None = None,
    owner_type: str | None = None,
    quiet: bool = True,
    batch_size: int | None = None,
    partial: bool = False,
) -> ImportSummary:
    """Import an OCL export file (.tgz/.tar.gz/.zip/.json, v1 or v2) into its repository.

    ``version`` names the version of a plain "Source"/"Collection" file (a "... Version" file
    carries its own id); ``owner_type`` ("orgs"/"users") overrides the file's owner type.
    ``partial`` applies the file's items to HEAD as changes and writes no version (see above).
    Raises :class:`ImportFileError` for a file it cannot load, with nothing written.
    """
    path = Path(path)
    started = time.monotonic()
    metadata = read_file_metadata(path, "damaged or truncated file, in its metadata")
    if "delta" in metadata:
        # Its items are only what changed: imported whole, it would make a version of just them.
        raise ImportFileError(f"{path}: a version delta, not an export; apply it to its base version instead")
    try:
        plan = plan_from_metadata(metadata, owner_type)
    except ImportFileError as exc:
        raise ImportFileError(f"{path}: {exc}") from exc
    except ValueError as exc:
        raise ImportFileError(f"{path}: bad metadata ({exc})") from exc
    with transaction.atomic():
        summary = _load(path, plan, version, quiet, batch_size or settings.IMPORT_BATCH_SIZE, partial)
        if summary.status != UNCHANGED and summary.concepts + summary.mappings >= ANALYZE_AFTER_ITEMS:
            transaction.on_commit(learn_table_sizes)
        committing = time.monotonic()
    summary.phases["commit"] = time.monotonic() - committing
    summary.seconds = time.monotonic() - started
    return summary


# An import of this many items refreshes PostgreSQL's statistics of the item and membership tables
# once it has committed (learn_table_sizes).
ANALYZE_AFTER_ITEMS = 10_000
# The item columns the service's queries filter, join and sort on (what the planner estimates).
PLANNED_COLUMNS = ("id", "source_id", "mnemonic", "uuid", "is_latest_version", "updated_on", "json_size")


def analyze(tables: Iterable[str]) -> None:
    """Refresh PostgreSQL's statistics of ``tables`` (a sample of each: tens of milliseconds at
    100,000 rows). Inside a transaction they count the rows it has written."""
    if connection.vendor == "postgresql":
        merge.execute(f"ANALYZE {', '.join(tables)}")


def learn_table_sizes() -> None:
    """ANALYZE the tables a large import grew. Until autovacuum gets to them (a minute or more
    later) PostgreSQL plans with the sizes it knew before: a new mirror's first import left it
    with none, and the export queued at once, or the next release's small merges, hashed and
    scanned whole tables where a few index lookups would do (0.42 s instead of 0.03 s for one
    statement at 100,000 items). The item tables' columns that queries filter and join on only:
    sampling the renderings too (a kilobyte a row) made it 0.8-1.2 s of a 100,000-item import."""
    items = f"({', '.join(PLANNED_COLUMNS)})"
    analyze(name for kind in KINDS.values() for name in (f"{kind.table} {items}", kind.membership))


class Phases(dict):
    """Wall time per phase of an import."""

    def __init__(self) -> None:
        super().__init__()
        self.mark = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self[name] = self.get(name, 0.0) + now - self.mark
        self.mark = now


def _tune_session() -> None:
    """More sort memory for this transaction, and no per-row foreign-key triggers when allowed.

    Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so every inserted item and membership
    row queues a check that runs at COMMIT: at 1M items that was ~3M checks and half the wall time.
    Every key this import writes comes from a row it just read or created in the same transaction
    (the repository, its versions, the ids of the rows it inserted), so the checks cannot fail.
    ``session_replication_role`` needs a superuser; without one the checks simply run.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # The set-based statements sort and hash a whole file's rows: in memory, not in temp files.
        cursor.execute(f"SET LOCAL work_mem = '{IMPORT_WORK_MEM}'")
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
        if cursor.fetchone()[0]:
            cursor.execute("SET LOCAL session_replication_role = replica")


def _load(
    path: Path,
    plan: RepoPlan,
    version: str | None,
    quiet: bool,
    batch_size: int,
    partial: bool = False,
    fill: Callable[[RepositoryVersion], datetime | None] | None = None,
) -> ImportSummary:
    """The import in its transaction. ``partial``: the same load, whose HEAD rule (the file's
    rows replace their items' rows, other items stay) is already what applying changes means,
    and no version is named or written. ``fill`` (a delta, see ``repos.importers.delta``) gives
    the new version its membership instead of "exactly the file's rows", and its newest item's
    ``updated_on`` when it knows it (else it is computed)."""
    phases = Phases()
    removals = 0
    _tune_session()
    repository = ensure_repository(plan)
    head = repository.head()
    resolver = SourceResolver(repository)
    for kind in KINDS.values():
        create_staging(kind)
    # The first import of a source has nothing to match against: its rows go straight into the
    # real tables (a duplicate item then fails the unique constraint, and the import says so).
    # So do a partial import's rows into an empty source: HEAD then holds exactly them.
    direct = (
        fill is None
        and repository.is_source
        and not any(merge.has_rows(kind, [repository.pk]) for kind in KINDS.values())
    )
    writer = RowWriter(direct=direct, keep_open=repository.is_source)
    # Rows going straight into the real tables carry their rendering, made here from the same
    # values (nothing rewrites them later); every other new row is rendered after the merge.
    renderer = ItemRenderer(repository) if direct else None
    # A diff may list what left the upstream's HEAD, or all it holds; a version file's removals
    # follow from its items.
    lists = {array: ListWriter(array) for array in (REMOVED, MEMBERS)} if partial else {}
    trailing = _stage_items(path, resolver, writer, quiet, batch_size, renderer, lists)
    phases.done("stage")
    if "references" in trailing and not repository.is_source:
        value = trailing["references"]
        plan.references = value if isinstance(value, list) else None
    _refuse_repeated_items(path, repository.pk if direct else None)
    phases.done("repeats")
    if direct:
        # Every row of the source is new and HEAD held none of them: HEAD gets them all, and the
        # figures come from what was written. Nothing to stage, match or render.
        for kind in KINDS.values():
            merge.add_source_rows(kind, head.pk, repository.pk)
            phases.done(f"head {kind.key}")
        written = Written(dict(writer.written), writer.newest_updated_on())
    else:
        _merge_staged(repository, head, phases)
        written = None
        now = timezone.now()
        if REMOVED in lists and lists[REMOVED].seen:
            removals += sum(remove_listed(kind, head.pk, now) for kind in KINDS.values())
        if MEMBERS in lists and lists[MEMBERS].seen:
            removals += sum(remove_unlisted(kind, head.pk, now) for kind in KINDS.values())
        phases.done("removals")
    if not repository.is_source and plan.references is not None and head.references != plan.references:
        head.references = plan.references
        head.save(update_fields=["references"])
    (concepts, new_concepts), (mappings, new_mappings) = (
        written.counts(kind) if written is not None else merge.counts(kind) for kind in (CONCEPTS, MAPPINGS)
    )
    if new_concepts or new_mappings:
        checksum_jobs.fill_after_commit(repository.pk)
    if partial:
        version_id, status = HEAD, CHANGED if new_concepts or new_mappings or removals else UNCHANGED
    else:
        version_id = plan.version_id or version or version_from_file_name(path) or _version_from_items(written)
        status, removals = _write_version(repository, head, plan, version_id, written, fill)
        phases.done("version")
    return ImportSummary(
        path=str(path),
        repository=repository.url,
        version=version_id,
        status=status,
        concepts=concepts,
        mappings=mappings,
        new_concepts=new_concepts,
        new_mappings=new_mappings,
        placeholders=[source.url for source in resolver.created],
        removed=removals,
        lists_removed=REMOVED in lists and lists[REMOVED].seen,
        newest=written.newest if written is not None else merge.newest_updated_on((CONCEPTS, MAPPINGS)),
        phases=dict(phases),
    )


def _refuse_repeated_items(path: Path, source_id: int | None) -> None:
    """A file that lists one item twice with other content is refused, naming it: which of the
    two the version should hold cannot be told (an OCL export never repeats one), and keeping
    both made the version list the item twice."""
    for kind in KINDS.values():
        repeated = merge.repeated_item(kind, source_id)
        if repeated is not None:
            source = Repository.objects.get(pk=repeated[0])
            raise ImportFileError(
                f"{path}: the file lists {kind.key[:-1]} {repeated[1]!r} of {source.url} twice, with other content"
            )


def _merge_staged(repository: Repository, head: RepositoryVersion, phases: Phases) -> None:
    """The staged rows into the real tables: reuse unchanged rows, insert the others, fix HEAD."""
    renderer = ItemRenderer(repository)
    source_ids = {kind.key: merge.staged_sources(kind) for kind in KINDS.values()}
    for kind in KINDS.values():
        # Nothing to match in sources that had no rows: skip the joins (and the indexes they need).
        existed = merge.has_rows(kind, source_ids[kind.key])
        if existed:
            index_staging(kind)
            merge.match_existing(kind)
        merge.insert_new(kind, renderer)
        if repository.is_source and existed:
            merge.flip_latest_for_source(kind)
        elif not repository.is_source:
            # Only the collection's own versions hold what it brings: a source's HEAD (and so
            # every version snapshotted from it later) never gains an item from a collection.
            merge.demote_new_for_collection(kind)
        merge.replace_in_head(kind, head.pk)
        phases.done(f"merge {kind.key}")
    for kind in KINDS.values():
        render_pending(kind)  # SQLite: the rows insert_new did not render
    phases.done("render")


@dataclass(frozen=True)
class Written:
    """A source's first import, told by what its writer sent (all of it new, all of it in HEAD)."""

    rows: dict[str, int]
    newest: datetime | None

    def counts(self, kind: ItemKind) -> tuple[int, int]:
        rows = self.rows.get(kind.key, 0)
        return rows, rows

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class ItemRenderer:
    """Renders an import's new rows as they are written (see render_parts): a source's first import
    while it streams them, any other import when it inserts the rows the merge found new."""

    def __init__(self, repository: Repository) -> None:
        self.sources = SourceInfoCache()
        self.sources[repository.pk] = source_info(repository)
        # OCL checksums now, or (the default) by a job after the commit: checksum_jobs.fill_after_commit
        self.checksums = checksum_jobs.inline()

    def __call__(self, key: str, source_id: int, row: tuple) -> tuple[str, str, int, str | None, str | None]:
        # a row is the kind's fields (the checksum last); its columns are (id, source_id, *fields but the checksum)
        return render_parts(KINDS[key], (0, source_id, *row[:-1]), self.sources, self.checksums)


def _stage_items(
    path: Path,
    resolver: SourceResolver,
    writer: RowWriter,
    quiet: bool,
    batch_size: int,
    renderer: ItemRenderer | None = None,
    lists: dict[str, ListWriter] | None = None,
) -> dict[str, Any]:
    """Stream the items into the staging (or real) tables, one batch per kind at a time; with
    ``lists``, a diff's removed and members entries into theirs. Returns the metadata that
    followed the first item array (see :mod:`repos.importers.reader`)."""
    builders: dict[str, tuple[Callable[[dict], tuple], Callable[[dict], str | None]]] = {
        "concepts": (concept_row, concept_source_url),
        "mappings": (mapping_row, mapping_source_url),
    }
    batches: dict[str, list[tuple]] = {key: [] for key in KINDS}
    progress = tqdm(desc=f"importing {path.name}", unit=" items", file=sys.stderr, disable=quiet, mininterval=1)
    key, index, ordinal = "concepts", -1, 0
    lists = lists or {}
    arrays = (*ITEM_ARRAYS, *lists)
    trailing: dict[str, Any] = {}
    after_items = False
    with open_export(path) as stream:
        try:
            for name, position, value in iter_items(stream, arrays, values=True):
                if position < 0:
                    # A top-level value (read in the first pass when it came before the items).
                    after_items = after_items or position == ARRAY
                    if position == VALUE and after_items and name in TRAILING_KEYS:
                        trailing[name] = value
                    if position == ARRAY and name in lists:
                        lists[name].seen = True
                    continue
                key, index, item = name, position, value  # the last item, for the errors below
                if key in lists:
                    try:
                        lists[key].add(index, item)
                    except ImportFileError as exc:
                        raise ImportFileError(f"{path}: {exc}") from exc
                    continue
                build, source_url = builders[key]
                ordinal += 1
                try:
                    if not isinstance(item, dict):
                        raise ValueError("the item is not a JSON object")
                    row = build(item)
                    source_id = resolver(source_url(item))
                except KeyError as exc:
                    raise ImportFileError(f"{path}: {key} item #{index} has no {exc.args[0]!r}") from exc
                except (ValueError, TypeError) as exc:
                    raise ImportFileError(f"{path}: {key} item #{index}: {exc}") from exc
                except ImportFileError as exc:
                    raise ImportFileError(f"{path}: {key} item #{index}: {exc}") from exc
                batch = batches[key]
                if renderer is not None:
                    batch.append((ordinal, source_id, *row, *renderer(key, source_id, row)))
                else:
                    batch.append((ordinal, source_id, *row))
                if len(batch) >= batch_size:
                    writer.write(KINDS[key], batch)
                    progress.update(len(batch))
                    batch.clear()
            for key, batch in batches.items():
                writer.write(KINDS[key], batch)
                progress.update(len(batch))
            writer.close()
            for listed in lists.values():
                listed.flush()
        except BaseException as exc:
            writer.abort(exc)
            if isinstance(exc, ScanLimitError):
                raise ImportFileError(f"{path}: refused: {exc}") from exc
            if isinstance(exc, DAMAGED) and not isinstance(exc, ImportFileError):
                where = f"after {key} item #{index}" if index >= 0 else "before the first item"
                raise ImportFileError(f"{path}: damaged or truncated file, {where} ({describe(exc)})") from exc
            if isinstance(exc, IntegrityError):
                raise ImportFileError(f"{path}: the file repeats an item ({describe(exc)})") from exc
            raise
        finally:
            progress.close()
    return trailing


def _version_from_items(written: Written | None) -> str:
    newest = written.newest if written is not None else merge.newest_updated_on((CONCEPTS, MAPPINGS))
    if newest is None:
        raise ImportFileError("the file names no version and has no items to date one; pass --version")
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return "v" + newest.astimezone(UTC).date().isoformat()


def _write_version(
    repository: Repository,
    head: RepositoryVersion,
    plan: RepoPlan,
    version_id: str,
    written: Written | None,
    fill: Callable[[RepositoryVersion], datetime | None] | None = None,
) -> tuple[str, int]:
    """The named version of the file: created with the file's rows, or found holding exactly them;
    (the status, how many items left HEAD).

    ``written`` is set on a source's first import, whose rows are exactly HEAD's; else the
    staging tables list the file's rows. A created version newer than every other makes HEAD
    hold exactly its items (see :mod:`repos.importers.removals`)."""
    if version_id == HEAD:
        raise ImportFileError("a file cannot be imported as the HEAD version")
    existing = RepositoryVersion.objects.filter(repository=repository, version=version_id).first()
    if existing is not None:
        # A first import's rows are all new: an existing version can only match an empty file.
        if (written is None or written.total == 0) and all(
            merge.same_membership(kind, existing.pk) for kind in KINDS.values()
        ):
            return UNCHANGED, 0
        raise ImportFileError(
            f"version {version_id!r} of {repository.url} already exists with other content; "
            "versions are immutable, import under another version id"
        )
    fields: dict[str, Any] = {key: value for key, value in plan.version_fields.items() if value is not None}
    if "previous_version_url" in fields:
        previous, fields["previous_version_url"] = _named_previous(repository, fields["previous_version_url"])
    else:
        previous = repository.versions.filter(~Q(version=HEAD)).order_by("-created_on", "-id").first() or head
    created = RepositoryVersion.objects.create(
        repository=repository,
        version=version_id,
        previous_version=previous,
        references=plan.references or [],
        **fields,
    )
    if fill is not None:
        created.last_updated = fill(created) or created.compute_last_updated()
    elif written is not None:
        copy_membership(head, created)
        created.last_updated = written.newest or created.updated_on
    else:
        for kind in KINDS.values():
            merge.add_membership(kind, created.pk)
        created.last_updated = created.compute_last_updated()
    if not plan.version_fields:
        # A plain Source/Collection file: the version is as new as its newest item.
        created.created_on = created.updated_on = created.last_updated
    created.save(update_fields=["last_updated", "created_on", "updated_on"])
    removals = 0
    if written is None and fill is None and _is_newest(created):  # (a delta's fill does its own)
        now = timezone.now()
        removals = sum(keep_only_staged(kind, head.pk, now) for kind in KINDS.values())
    transaction.on_commit(lambda: signals.version_created.send(sender=RepositoryVersion, version=created, user=None))
    return CREATED, removals


def _is_newest(version: RepositoryVersion) -> bool:
    """No other version of the repository was created after it (an older one imported late is not)."""
    others = version.repository.versions.exclude(version=HEAD).exclude(pk=version.pk)
    return not others.filter(created_on__gt=version.created_on).exists()


def _named_previous(repository: Repository, url: str) -> tuple[RepositoryVersion | None, str | None]:
    """The previous version a version file names: the one here when it is here, else its URL as is
    (an upstream's unreleased version that a mirror does not hold), or none for an empty name."""
    if not url:
        return None, None
    if url.startswith(repository.url):
        found = repository.versions.filter(version=url[len(repository.url) :].strip("/")).first()
        if found is not None:
            return found, None
    return None, url
