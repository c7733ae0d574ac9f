"""What the export tests share: a small CIEL source with a released version, running the queue,
and following a Location to the archive's bytes."""

from __future__ import annotations

import io
import tarfile
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
import orjson
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from rq import SimpleWorker

from ocl_export.models import Export
from repos.models import Organization, Repository, RepositoryVersion
from tests.factories import add_concept, add_mapping, make_source, make_version

T0 = datetime(2016, 10, 4, 12, 31, 13, tzinfo=UTC)
EXPORT_URL = "/orgs/CIEL/sources/CIEL/v1/export/"


def ciel_source(org: Organization, **fields: Any) -> Repository:
    """CIEL with three concepts (one retired) and two mappings (one to an external code)."""
    source = make_source(org, "CIEL", **fields)
    yes = add_concept(source, "1065", display_name="Yes", updated_on=T0 - timedelta(days=2))
    no = add_concept(source, "1066", display_name="No", updated_on=T0 - timedelta(days=1))
    add_concept(source, "1067", display_name="Unknown", retired=True, updated_on=T0 - timedelta(days=3))
    add_mapping(source, "M1", from_concept=yes, to_concept=no, map_type="NARROWER-THAN", updated_on=T0)
    add_mapping(source, "M2", from_concept=yes, to_concept_code="373066001", updated_on=T0 - timedelta(hours=1))
    return source


def ciel_v1(org: Organization, **fields: Any) -> RepositoryVersion:
    return make_version(ciel_source(org, **fields), "v1")


def work() -> None:
    """Run every queued export job in this process (the test's database and Redis)."""
    worker = django_rq.get_worker(settings.EXPORT_QUEUE, worker_class=SimpleWorker)
    worker.work(burst=True)


def the_export(version: RepositoryVersion, fmt: str = "tgz") -> Export:
    return Export.objects.get(version=version, format=fmt, base=None)


def queued_job_ids() -> list[str]:
    return django_rq.get_queue(settings.EXPORT_QUEUE).get_job_ids()


def fetch_archive(location: str, client: APIClient | None = None) -> requests.Response | Any:
    """Follow a Location: the service's part through the test client, then S3 over HTTP if the
    service redirects there. Returns the final response (its ``.content`` is the archive)."""
    client = client or APIClient()
    response = client.get(location)
    if response.status_code == 302:
        return requests.get(response["Location"], timeout=30)
    return response


def content_of(response: Any) -> bytes:
    if hasattr(response, "streaming_content"):
        return b"".join(response.streaming_content)
    return response.content


def export_json_of(archive: bytes, fmt: str = "tgz") -> bytes:
    """The bytes of the one member, checking that it is the only one."""
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            assert bundle.namelist() == ["export.json"]
            return bundle.read("export.json")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as bundle:
        assert bundle.getnames() == ["export.json"]
        member = bundle.extractfile("export.json")
        assert member is not None
        return member.read()


def parsed(archive: bytes, fmt: str = "tgz") -> dict[str, Any]:
    return orjson.loads(export_json_of(archive, fmt))


RANDOM_TEXT = " || ".join(["md5(random()::text)"] * 16)  # 512 hex digits that gzip cannot shrink much


def big_version(org: object, concepts: int, version_id: str = "v1") -> RepositoryVersion:
    """CIEL ``version_id`` with ``concepts`` concepts of poorly compressible text, written by one
    INSERT ... SELECT (the ORM would take ages)."""
    source = make_source(org, "CIEL")
    head = source.head()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH rows AS (
                INSERT INTO repos_conceptversion (
                    source_id, mnemonic, uuid, concept_class, datatype, display_name, display_locale, names,
                    descriptions, extras, retired, created_on, updated_on, version_created_on,
                    version_created_by, is_latest_version, checksum)
                SELECT %s, n::text, md5(n::text), 'Misc', 'N/A', 'Concept ' || n, 'en',
                       '[{"uuid": "' || md5(n::text) || '", "name": "' || RANDOM_TEXT
                       || '", "external_id": null, "type": "ConceptName", "locale": "en",'
                       || ' "locale_preferred": true, "name_type": "FULLY_SPECIFIED"}]',
                       '[]', '{}', false, %s, %s, %s, '', true, ''
                FROM generate_series(1, %s) AS n
                RETURNING id)
            INSERT INTO repos_version_concepts (repositoryversion_id, conceptversion_id) SELECT %s, id FROM rows
            """.replace("RANDOM_TEXT", RANDOM_TEXT),
            [source.pk, now, now, now, concepts, head.pk],
        )
    return make_version(source, version_id)


def stored_keys(s3_bucket: tuple) -> list[str]:
    """The keys of every object in the test's S3 bucket."""
    client, bucket = s3_bucket
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
