"""The storage seam, against a real S3 server over HTTP and against the filesystem.

Plus the export pipeline (``produce_archive``) end to end on a small version built with the ORM.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from foundation.archive import archive_file_name
from ocl_export.produce import last_updated_of, produce_archive
from ocl_export.storage import (
    PART_SIZE,
    FileSystemExportStorage,
    S3ExportStorage,
    StorageError,
    export_key,
    get_storage,
)
from repos.models import ConceptVersion, MappingVersion, Repository, RepositoryVersion
from repos.representation.body import stream_version
from repos.representation.shapes import names_json

KEY = "orgs/CIEL/sources/CIEL/CIEL_v1.20161004123113.tgz"


class Boom(Exception):
    pass


def full_key(key: str) -> str:
    storage = get_storage()
    assert isinstance(storage, S3ExportStorage)
    return storage.full_key(key)


def write(key: str, data: bytes, content_type: str = "application/gzip", piece: int = 1 << 20) -> None:
    with get_storage().open_writer(key, content_type) as sink:
        for start in range(0, len(data), piece):
            sink.write(data[start : start + piece])


# --- keys -----------------------------------------------------------------------------------


def test_export_key_is_the_file_name_under_owner_and_repository() -> None:
    assert export_key("orgs", "CIEL", "sources", "CIEL", "CIEL_v1.20161004123113.tgz") == KEY
    assert export_key("User", "alice", "collections", "C", "C_v1.20161004123113.zip") == (
        "users/alice/collections/C/C_v1.20161004123113.zip"
    )


def test_keys_of_v1_and_v1_1_do_not_match_by_prefix() -> None:
    stamp = datetime(2016, 10, 4, 12, 31, 13, tzinfo=UTC)
    v1 = export_key("orgs", "O", "sources", "R", archive_file_name("R", "v1", stamp, "tgz"))
    v11 = export_key("orgs", "O", "sources", "R", archive_file_name("R", "v1.1", stamp, "tgz"))
    assert v1 != v11
    assert not v11.startswith(v1) and not v1.startswith(v11)


def test_export_key_segments_cannot_escape_their_place() -> None:
    key = export_key("orgs", "..", "sources", "a/b", "x.tgz")
    assert key.split("/") == ["orgs", "%2E%2E", "sources", "a%2Fb", "x.tgz"]
    with pytest.raises(ValueError):
        export_key("teams", "O", "sources", "R", "x.tgz")


# --- S3 -------------------------------------------------------------------------------------


def test_s3_clean_exit_publishes_with_content_type_and_no_content_encoding(s3_bucket) -> None:
    client, bucket = s3_bucket
    data = os.urandom(1000)
    write(KEY, data)
    head = client.head_object(Bucket=bucket, Key=full_key(KEY))
    assert head["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in head
    assert "ServerSideEncryption" not in head
    storage = get_storage()
    assert storage.is_remote
    assert storage.exists(KEY)
    assert storage.size(KEY) == len(data)
    assert storage.open_reader(KEY).read() == data


def test_s3_multipart_upload_publishes_all_parts_in_order_with_sse(s3_bucket, settings) -> None:
    settings.AWS_S3_SSE = "AES256"
    client, bucket = s3_bucket
    data = os.urandom(PART_SIZE * 2 + 12345)
    write("orgs/O/sources/R/R_v1.20200101000000.zip", data, "application/zip", piece=3_000_001)
    head = client.head_object(Bucket=bucket, Key=full_key("orgs/O/sources/R/R_v1.20200101000000.zip"))
    assert head["ContentType"] == "application/zip"
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == len(data)
    assert get_storage().open_reader("orgs/O/sources/R/R_v1.20200101000000.zip").read() == data


def test_s3_small_object_gets_sse_too(s3_bucket, settings) -> None:
    settings.AWS_S3_SSE = "AES256"
    client, bucket = s3_bucket
    write(KEY, b"small")
    assert client.head_object(Bucket=bucket, Key=full_key(KEY))["ServerSideEncryption"] == "AES256"


@pytest.mark.parametrize("size", [100, PART_SIZE + 1, 3 * PART_SIZE])
def test_s3_exception_inside_the_writer_leaves_no_object_and_no_upload(s3_bucket, size: int) -> None:
    client, bucket = s3_bucket
    with pytest.raises(Boom):
        with get_storage().open_writer(KEY, "application/gzip") as sink:
            sink.write(os.urandom(size))
            raise Boom
    assert not get_storage().exists(KEY)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_presigned_url_downloads_the_bytes_with_content_disposition(s3_bucket) -> None:
    data = os.urandom(5000)
    write(KEY, data)
    url = get_storage().presigned_url(KEY, "CIEL_v1.20161004123113.tgz", "application/gzip")
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Disposition"] == 'attachment; filename="CIEL_v1.20161004123113.tgz"'
    assert response.headers["Content-Type"] == "application/gzip"
    assert "X-Amz-Expires=60" in url  # settings.EXPORT_PRESIGN_TTL


def test_s3_presigned_url_signs_its_expiry_key_and_disposition(s3_bucket, settings) -> None:
    """moto honours neither expiry nor the key binding of a signature, so what is signed is checked
    here: SigV4 covers the path (the full key) and every query parameter below."""
    _client, bucket = s3_bucket
    settings.EXPORT_PRESIGN_TTL = 17
    url = urlsplit(get_storage().presigned_url(KEY, "CIEL_v1.20161004123113.tgz", "application/gzip"))
    query = parse_qs(url.query)
    assert url.path == f"/{bucket}/{settings.AWS_LOCATION}/{KEY}"
    assert query["X-Amz-Expires"] == ["17"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["response-content-disposition"] == ['attachment; filename="CIEL_v1.20161004123113.tgz"']
    assert query["response-content-type"] == ["application/gzip"]
    signed = query["X-Amz-SignedHeaders"][0].split(";")
    assert signed == ["host"] and query["X-Amz-Signature"]


def test_s3_delete_is_idempotent(s3_bucket) -> None:
    write(KEY, b"x")
    storage = get_storage()
    storage.delete(KEY)
    assert not storage.exists(KEY)
    storage.delete(KEY)


def test_s3_keys_of_v1_and_v1_1_are_separate_objects(s3_bucket) -> None:
    v1 = "orgs/O/sources/R/R_v1.20200101000000.tgz"
    v11 = "orgs/O/sources/R/R_v1.1.20200101000000.tgz"
    write(v1, b"one")
    write(v11, b"one point one")
    storage = get_storage()
    storage.delete(v1)
    assert not storage.exists(v1)
    assert storage.open_reader(v11).read() == b"one point one"


def test_s3_abort_stale_uploads_aborts_only_under_the_prefix(s3_bucket) -> None:
    client, bucket = s3_bucket
    mine = client.create_multipart_upload(Bucket=bucket, Key=full_key("orgs/O/sources/R/R_v1.1.tgz"))
    other = client.create_multipart_upload(Bucket=bucket, Key=full_key("orgs/P/sources/R/R_v1.1.tgz"))
    storage = get_storage()
    # moto reports every upload as initiated in 2010, so the age filter is tested on the filesystem.
    assert storage.abort_stale_uploads("orgs/O/", older_than_seconds=0) == 1
    left = [upload["UploadId"] for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == [other["UploadId"]]
    assert mine["UploadId"] not in left
    assert storage.abort_stale_uploads("", older_than_seconds=0) == 1
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_unreachable_server_is_a_storage_error(s3_bucket, settings) -> None:
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(StorageError):
        get_storage().exists(KEY)


def test_s3_server_errors_are_storage_errors_and_client_errors_are_not() -> None:
    from botocore.exceptions import ClientError

    from ocl_export.storage import is_temporary

    def error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    assert is_temporary(error(503, "ServiceUnavailable"))
    assert is_temporary(error(400, "RequestTimeout"))
    assert not is_temporary(error(403, "AccessDenied"))


# --- filesystem -----------------------------------------------------------------------------


def test_fs_clean_exit_publishes_the_file(fs_storage) -> None:
    data = os.urandom(3 << 20)
    write(KEY, data)
    storage = get_storage()
    assert isinstance(storage, FileSystemExportStorage)
    assert not storage.is_remote
    assert storage.exists(KEY)
    assert storage.size(KEY) == len(data)
    with storage.open_reader(KEY) as reader:
        assert reader.read() == data
    assert storage.presigned_url(KEY, "x.tgz", "application/gzip") is None
    assert sorted(p.name for p in (fs_storage / KEY).parent.iterdir()) == ["CIEL_v1.20161004123113.tgz"]


def test_fs_exception_inside_the_writer_leaves_no_file(fs_storage) -> None:
    with pytest.raises(Boom):
        with get_storage().open_writer(KEY, "application/gzip") as sink:
            sink.write(b"partial")
            assert any(".partial-" in p.name for p in (fs_storage / KEY).parent.iterdir())
            raise Boom
    assert not get_storage().exists(KEY)
    assert list((fs_storage / KEY).parent.iterdir()) == []


def test_fs_delete_is_idempotent(fs_storage) -> None:
    write(KEY, b"x")
    get_storage().delete(KEY)
    assert not get_storage().exists(KEY)
    get_storage().delete(KEY)


def test_fs_abort_stale_uploads_removes_old_partial_files_only(fs_storage) -> None:
    directory = fs_storage / "orgs/O/sources/R"
    directory.mkdir(parents=True)
    stale = directory / "R_v1.20200101000000.tgz.partial-abc"
    fresh = directory / "R_v1.1.20200101000000.tgz.partial-def"
    done = directory / "R_v2.20200101000000.tgz"
    for path in (stale, fresh, done):
        path.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert get_storage().abort_stale_uploads("orgs/", older_than_seconds=3600) == 1
    assert sorted(p.name for p in directory.iterdir()) == sorted([fresh.name, done.name])
    # A whole key as the prefix sweeps that key's partial files only.
    assert get_storage().abort_stale_uploads("orgs/O/sources/R/R_v2.20200101000000.tgz", 0) == 0
    assert get_storage().abort_stale_uploads("orgs/O/sources/R/R_v1.1.20200101000000.tgz", 0) == 1
    assert sorted(p.name for p in directory.iterdir()) == [done.name]


def test_fs_key_cannot_leave_the_export_directory(fs_storage) -> None:
    with pytest.raises(ValueError):
        get_storage().exists("../outside.tgz")


# --- the pipeline ---------------------------------------------------------------------------


@pytest.fixture
def small_version(org) -> RepositoryVersion:
    source = Repository.objects.create(repo_type=Repository.SOURCES, owner_org=org, mnemonic="CIEL", name="CIEL")
    stamp = datetime(2016, 10, 4, 12, 31, 13, tzinfo=UTC)
    version = RepositoryVersion.objects.create(repository=source, version="v1", released=True, updated_on=stamp)
    concepts = [
        ConceptVersion.objects.create(
            source=source,
            mnemonic=str(number),
            uuid=f"c{number}",
            concept_class="Diagnosis",
            datatype="N/A",
            display_name=f"Concept {number}",
            display_locale="en",
            names=names_json([{"name": f"Concept {number}", "locale": "en", "locale_preferred": True}]),
            updated_on=stamp,
        )
        for number in range(1, 4)
    ]
    mapping = MappingVersion.objects.create(
        source=source, mnemonic="m1", uuid="m1", map_type="SAME-AS", from_concept_code="1", to_concept_code="2"
    )
    version.concepts.add(*concepts)
    version.mappings.add(mapping)
    return version


def test_produce_archive_publishes_export_json_equal_to_the_stream(small_version, s3_bucket) -> None:
    last_updated = last_updated_of(small_version)
    key = export_key("orgs", "CIEL", "sources", "CIEL", archive_file_name("CIEL", "v1", last_updated, "tgz"))
    seen: list[int] = []
    result = produce_archive(small_version, "tgz", key, on_progress=seen.append)
    storage = get_storage()
    assert storage.exists(key)
    assert storage.size(key) == result.size
    expected = b"".join(stream_version(small_version))
    with tarfile.open(fileobj=io.BytesIO(storage.open_reader(key).read()), mode="r:gz") as tar:
        assert tar.getnames() == ["export.json"]
        assert tar.extractfile("export.json").read() == expected
    assert seen and seen[-1] == 4
    assert produce_archive(small_version, "tgz", key) == result  # reproducible


def test_produce_archive_zip_on_the_filesystem(small_version, fs_storage) -> None:
    key = "orgs/CIEL/sources/CIEL/CIEL_v1.20161004123113.zip"
    result = produce_archive(small_version, "zip", key)
    with get_storage().open_reader(key) as reader:
        raw = reader.read()
    assert len(raw) == result.size
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.namelist() == ["export.json"]
        assert zf.read("export.json") == b"".join(stream_version(small_version))


def test_produce_archive_failure_publishes_nothing(small_version, s3_bucket) -> None:
    client, bucket = s3_bucket

    def fail(done: int) -> None:
        raise Boom

    with pytest.raises(Boom):
        produce_archive(small_version, "tgz", KEY, on_progress=fail)
    assert not get_storage().exists(KEY)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
