"""The terminology content: owners, repositories, versions, concept and mapping versions.

Concept and mapping versions are immutable rows (only ``is_latest_version`` flips to false when a
newer version of the same item arrives). A repository version points at the rows it holds through
two membership tables, so a version's export is a few ordered, index-driven scans. Names,
descriptions and extras never change once written, so they are stored as JSON *text* and emitted
verbatim: no parsing on the export path.
"""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Max, Q
from django.utils import timezone

HEAD = "HEAD"
LATEST = "latest"

PUBLIC_ACCESS_CHOICES = [("View", "View"), ("Edit", "Edit"), ("None", "None")]


def new_uuid() -> str:
    return uuid_lib.uuid4().hex


class Organization(models.Model):
    mnemonic = models.CharField(max_length=255, unique=True)
    uuid = models.CharField(max_length=64, default=new_uuid)
    name = models.CharField(max_length=255, blank=True, default="")
    company = models.CharField(max_length=255, blank=True, default="")
    website = models.CharField(max_length=255, blank=True, default="")
    location = models.CharField(max_length=255, blank=True, default="")
    public_access = models.CharField(max_length=8, choices=PUBLIC_ACCESS_CHOICES, default="View")
    extras = models.JSONField(default=dict, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    updated_on = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True, default="")
    updated_by = models.CharField(max_length=255, blank=True, default="")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organizations")

    def __str__(self) -> str:
        return self.mnemonic

    @property
    def url(self) -> str:
        return f"/orgs/{self.mnemonic}/"


class Membership(models.Model):
    ADMIN = "admin"
    MEMBER = "member"
    ROLE_CHOICES = [(ADMIN, "Admin"), (MEMBER, "Member")]

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=ROLE_CHOICES, default=MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="unique_membership")]


class RepositoryQuerySet(models.QuerySet):
    def visible_to(self, user) -> RepositoryQuerySet:
        """Public repositories, plus private ones of the caller's own account or organizations."""
        if user is not None and user.is_authenticated and user.is_staff:
            return self
        visible = ~Q(public_access="None")
        if user is not None and user.is_authenticated:
            visible |= Q(owner_user=user) | Q(owner_org__membership__user=user)
        return self.filter(visible).distinct()

    def administered_by(self, user) -> RepositoryQuerySet:
        """The repositories ``Repository.is_admin`` lets ``user`` administer, as one query."""
        if user is None or not user.is_authenticated:
            return self.none()
        if user.is_staff or user.is_superuser:
            return self
        admin_of_org = Q(owner_org__membership__user=user, owner_org__membership__role=Membership.ADMIN)
        return self.filter(Q(owner_user=user) | admin_of_org).distinct()


class Repository(models.Model):
    """A source or a collection, with its live (HEAD) metadata."""

    SOURCES = "sources"
    COLLECTIONS = "collections"
    REPO_TYPE_CHOICES = [(SOURCES, "Source"), (COLLECTIONS, "Collection")]

    repo_type = models.CharField(max_length=16, choices=REPO_TYPE_CHOICES)
    owner_org = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="repositories"
    )
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="repositories"
    )
    mnemonic = models.CharField(max_length=255)
    uuid = models.CharField(max_length=64, default=new_uuid)
    name = models.CharField(max_length=255, blank=True, default="")
    full_name = models.CharField(max_length=255, blank=True, default="")
    description = models.TextField(blank=True, default="")
    # source_type for sources, collection_type for collections
    type_name = models.CharField(max_length=64, blank=True, default="")
    custom_validation_schema = models.CharField(max_length=64, null=True, blank=True)
    public_access = models.CharField(max_length=8, choices=PUBLIC_ACCESS_CHOICES, default="View")
    default_locale = models.CharField(max_length=32, default="en")
    supported_locales = models.JSONField(default=list, blank=True)
    website = models.CharField(max_length=255, null=True, blank=True)
    extras = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    updated_on = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True, default="")
    updated_by = models.CharField(max_length=255, blank=True, default="")

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "repositories"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(owner_org__isnull=False, owner_user__isnull=True)
                    | Q(owner_org__isnull=True, owner_user__isnull=False)
                ),
                name="repository_has_one_owner",
            ),
            models.UniqueConstraint(
                fields=["owner_org", "repo_type", "mnemonic"],
                condition=Q(owner_org__isnull=False),
                name="unique_org_repo",
            ),
            models.UniqueConstraint(
                fields=["owner_user", "repo_type", "mnemonic"],
                condition=Q(owner_user__isnull=False),
                name="unique_user_repo",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    # --- owner -------------------------------------------------------------------------------
    @property
    def owner_mnemonic(self) -> str:
        return self.owner_org.mnemonic if self.owner_org_id else self.owner_user.username

    @property
    def owner_type(self) -> str:
        return "Organization" if self.owner_org_id else "User"

    @property
    def owner_url(self) -> str:
        return f"/orgs/{self.owner_mnemonic}/" if self.owner_org_id else f"/users/{self.owner_mnemonic}/"

    @property
    def url(self) -> str:
        return f"{self.owner_url}{self.repo_type}/{self.mnemonic}/"

    @property
    def is_source(self) -> bool:
        return self.repo_type == self.SOURCES

    @property
    def type_label(self) -> str:
        return "Source" if self.is_source else "Collection"

    # --- permissions -------------------------------------------------------------------------
    def is_admin(self, user) -> bool:
        """Owner user, an admin member of the owning organization, or staff."""
        if user is None or not user.is_authenticated:
            return False
        if user.is_staff or user.is_superuser:
            return True
        if self.owner_user_id:
            return self.owner_user_id == user.pk
        return Membership.objects.filter(organization_id=self.owner_org_id, user=user, role=Membership.ADMIN).exists()

    def can_view(self, user) -> bool:
        if self.public_access != "None":
            return True
        if user is None or not user.is_authenticated:
            return False
        if user.is_staff or user.is_superuser:
            return True
        if self.owner_user_id:
            return self.owner_user_id == user.pk
        return Membership.objects.filter(organization_id=self.owner_org_id, user=user).exists()

    # --- versions ----------------------------------------------------------------------------
    def head(self) -> RepositoryVersion:
        head, _ = RepositoryVersion.objects.get_or_create(
            repository=self,
            version=HEAD,
            defaults={"created_on": self.created_on, "updated_on": self.updated_on, "created_by": self.created_by},
        )
        return head

    def released_versions(self) -> models.QuerySet[RepositoryVersion]:
        return self.versions.exclude(version=HEAD).filter(released=True, retired=False)


class RepositoryVersion(models.Model):
    """HEAD (live) or an immutable snapshot of HEAD's membership."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=255)
    uuid = models.CharField(max_length=64, default=new_uuid)
    description = models.TextField(blank=True, default="")
    released = models.BooleanField(default=False)
    retired = models.BooleanField(default=False)
    extras = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    previous_version = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What an imported version file named as its previous version when that version is not here
    # (a mirror holds only an upstream's released versions): shown as it was, for the same bytes.
    previous_version_url = models.CharField(max_length=1000, null=True, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    updated_on = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True, default="")
    updated_by = models.CharField(max_length=255, blank=True, default="")
    # Newest updated_on among the version's items (its own updated_on when it has none).
    # Computed once when a snapshot is taken; HEAD derives it on demand.
    last_updated = models.DateTimeField(null=True, blank=True)
    # Collection versions: the reference expressions they were built from.
    references = models.JSONField(default=list, blank=True)
    # OCL's checksums of the version's content (repos.checksums.version_checksums), stored the
    # first time they are asked for; a named version's items never change. NULL until then.
    checksum_standard = models.CharField(max_length=32, null=True, blank=True)
    checksum_smart = models.CharField(max_length=32, null=True, blank=True)

    concepts = models.ManyToManyField("ConceptVersion", related_name="repo_versions", through="VersionConcept")
    mappings = models.ManyToManyField("MappingVersion", related_name="repo_versions", through="VersionMapping")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "version"], name="unique_repository_version")]
        indexes = [models.Index(fields=["repository", "-created_on"], name="repo_version_newest")]

    def __str__(self) -> str:
        return f"{self.repository.url}{self.version}/"

    @property
    def is_head(self) -> bool:
        return self.version == HEAD

    @property
    def url(self) -> str:
        return f"{self.repository.url}{self.version}/"

    def compute_last_updated(self) -> datetime:
        """Newest updated_on among the version's concepts and mappings, else its own updated_on."""
        newest = [
            self.concepts.aggregate(m=Max("updated_on"))["m"],
            self.mappings.aggregate(m=Max("updated_on"))["m"],
        ]
        found = [value for value in newest if value is not None]
        return max(found) if found else self.updated_on

    def get_last_updated(self) -> datetime:
        if self.last_updated is not None and not self.is_head:
            return self.last_updated
        return self.compute_last_updated()


class ConceptVersion(models.Model):
    """One immutable version of a concept of a source."""

    source = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="concept_versions")
    mnemonic = models.CharField(max_length=255)  # the concept's id
    uuid = models.CharField(max_length=64)  # this version's id ("version" in JSON)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    concept_class = models.CharField(max_length=255, null=True, blank=True)
    datatype = models.CharField(max_length=255, null=True, blank=True)
    display_name = models.TextField(null=True, blank=True)
    display_locale = models.CharField(max_length=32, null=True, blank=True)
    names = models.TextField(default="[]")  # JSON text, emitted verbatim
    descriptions = models.TextField(default="[]")  # JSON text
    extras = models.TextField(default="{}")  # JSON text
    retired = models.BooleanField(default=False)
    retire_reason = models.TextField(null=True, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    updated_on = models.DateTimeField(default=timezone.now)
    version_created_on = models.DateTimeField(default=timezone.now)
    version_created_by = models.CharField(max_length=255, blank=True, default="")
    update_comment = models.TextField(null=True, blank=True)
    is_latest_version = models.BooleanField(default=True)
    previous_version_uuid = models.CharField(max_length=64, null=True, blank=True)
    # A digest of the content fields, so that a re-import recognises unchanged items cheaply.
    checksum = models.CharField(max_length=64, default="")
    # The item's JSON, rendered once by repos.representation.rendering.render_pending, split around the
    # value of is_latest_version (the one field that changes). NULL until rendered.
    json_head = models.TextField(null=True, blank=True)
    json_tail = models.TextField(null=True, blank=True)
    # UTF-8 bytes of json_head + json_tail: an export's size is a sum over a covering index.
    json_size = models.IntegerField(null=True, blank=True)
    # OCL's checksums (ocldev.checksum) of the item as served, written with its rendering.
    checksum_standard = models.CharField(max_length=32, null=True, blank=True)
    checksum_smart = models.CharField(max_length=32, null=True, blank=True)

    class Meta:
        # The unique index also serves lookups by (source, mnemonic): no separate index to maintain.
        constraints = [models.UniqueConstraint(fields=["source", "mnemonic", "uuid"], name="unique_concept_version")]
        indexes = [
            models.Index(fields=["updated_on"], name="concept_updated_on"),
            models.Index(fields=["id"], condition=Q(json_head__isnull=True), name="concept_unrendered"),
            # Rows without OCL checksums (written before they existed): few or none, so tiny.
            models.Index(fields=["id"], condition=Q(checksum_standard__isnull=True), name="concept_no_checksums"),
            models.Index(fields=["id"], include=["is_latest_version", "json_size"], name="concept_sizes"),
        ]


class MappingVersion(models.Model):
    """One immutable version of a mapping of a source."""

    source = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="mapping_versions")
    mnemonic = models.CharField(max_length=255)  # the mapping's id
    uuid = models.CharField(max_length=64)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    retired = models.BooleanField(default=False)
    retire_reason = models.TextField(null=True, blank=True)
    map_type = models.CharField(max_length=255)
    from_concept_code = models.CharField(max_length=255, null=True, blank=True)
    from_concept_name = models.TextField(null=True, blank=True)
    from_concept_url = models.TextField(null=True, blank=True)
    to_concept_code = models.CharField(max_length=255, null=True, blank=True)
    to_concept_name = models.TextField(null=True, blank=True)
    to_concept_url = models.TextField(null=True, blank=True)
    from_source_owner = models.CharField(max_length=255, null=True, blank=True)
    from_source_owner_type = models.CharField(max_length=32, null=True, blank=True)
    from_source_url = models.TextField(null=True, blank=True)
    from_source_name = models.CharField(max_length=255, null=True, blank=True)
    to_source_owner = models.CharField(max_length=255, null=True, blank=True)
    to_source_owner_type = models.CharField(max_length=32, null=True, blank=True)
    to_source_url = models.TextField(null=True, blank=True)
    to_source_name = models.CharField(max_length=255, null=True, blank=True)
    sort_weight = models.FloatField(null=True, blank=True)
    extras = models.TextField(default="{}")  # JSON text
    update_comment = models.TextField(null=True, blank=True)
    created_on = models.DateTimeField(default=timezone.now)
    updated_on = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True, default="")
    updated_by = models.CharField(max_length=255, blank=True, default="")
    is_latest_version = models.BooleanField(default=True)
    checksum = models.CharField(max_length=64, default="")
    json_head = models.TextField(null=True, blank=True)  # see ConceptVersion.json_head
    json_tail = models.TextField(null=True, blank=True)
    json_size = models.IntegerField(null=True, blank=True)
    checksum_standard = models.CharField(max_length=32, null=True, blank=True)  # see ConceptVersion
    checksum_smart = models.CharField(max_length=32, null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "mnemonic", "uuid"], name="unique_mapping_version")]
        indexes = [
            models.Index(fields=["updated_on"], name="mapping_updated_on"),
            models.Index(fields=["id"], condition=Q(json_head__isnull=True), name="mapping_unrendered"),
            models.Index(fields=["id"], condition=Q(checksum_standard__isnull=True), name="mapping_no_checksums"),
            models.Index(fields=["id"], include=["is_latest_version", "json_size"], name="mapping_sizes"),
        ]


class VersionConcept(models.Model):
    """A version holds a concept version. The key is the pair itself: no surrogate id, so a
    membership row costs one heap tuple and two index entries (the key, and the item side for
    deletes), which is most of what importing or snapshotting a large version writes."""

    pk = models.CompositePrimaryKey("repositoryversion", "conceptversion")
    repositoryversion = models.ForeignKey(RepositoryVersion, on_delete=models.CASCADE, db_index=False)
    conceptversion = models.ForeignKey(ConceptVersion, on_delete=models.CASCADE)

    class Meta:
        db_table = "repos_version_concepts"


class VersionMapping(models.Model):
    """A version holds a mapping version (see :class:`VersionConcept`)."""

    pk = models.CompositePrimaryKey("repositoryversion", "mappingversion")
    repositoryversion = models.ForeignKey(RepositoryVersion, on_delete=models.CASCADE, db_index=False)
    mappingversion = models.ForeignKey(MappingVersion, on_delete=models.CASCADE)

    class Meta:
        db_table = "repos_version_mappings"


class HeadRemoval(models.Model):
    """An item that left a HEAD: what a client that holds HEAD must drop (a tombstone).

    Written where HEAD loses an item (``repos.importers.removals``), read by
    ``?includeRemoved=true`` (``repos.removals``). One row per item and HEAD, the latest removal:
    an item removed again replaces its row, so the table grows with the items ever removed, not
    with every import. The URLs are kept as they were, so a removal reads the same however the
    source is renamed or emptied later.
    """

    head = models.ForeignKey(RepositoryVersion, on_delete=models.CASCADE, related_name="removals")
    kind = models.CharField(max_length=16)  # "concepts" or "mappings"
    source = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    mnemonic = models.CharField(max_length=255)  # the item's id
    url = models.TextField()
    version_url = models.TextField()  # of the row HEAD held when the item left it
    removed_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["head", "kind", "source", "mnemonic"], name="unique_head_removal")
        ]
        indexes = [models.Index(fields=["head", "removed_on"], name="head_removal_since")]


def snapshot_head(
    repository: Repository,
    version_id: str,
    *,
    description: str = "",
    released: bool = False,
    created_by: str = "",
    extras: dict | None = None,
    external_id: str | None = None,
    created_on: datetime | None = None,
    uuid: str | None = None,
) -> RepositoryVersion:
    """Create an immutable version holding exactly HEAD's items, in set-based statements."""
    with transaction.atomic():
        head = repository.head()
        previous = repository.versions.exclude(version=HEAD).order_by("-created_on", "-id").first()
        now = created_on or timezone.now()
        version = RepositoryVersion.objects.create(
            repository=repository,
            version=version_id,
            uuid=uuid or new_uuid(),
            description=description,
            released=released,
            extras=extras or {},
            external_id=external_id,
            previous_version=previous or head,
            created_on=now,
            updated_on=now,
            created_by=created_by,
            updated_by=created_by,
            references=head.references,
        )
        copy_membership(head, version)
        version.last_updated = version.compute_last_updated()
        version.save(update_fields=["last_updated"])
    return version


def copy_membership(source: RepositoryVersion, target: RepositoryVersion) -> None:
    """INSERT ... SELECT of the membership rows: one statement per table, whatever the size."""
    with connection.cursor() as cursor:
        for table, column in (
            ("repos_version_concepts", "conceptversion_id"),
            ("repos_version_mappings", "mappingversion_id"),
        ):
            cursor.execute(
                f"INSERT INTO {table} (repositoryversion_id, {column}) "
                # In row order, the membership indexes grow at their right edge.
                f"SELECT %s, {column} FROM {table} WHERE repositoryversion_id = %s ORDER BY {column}",
                [target.pk, source.pk],
            )
