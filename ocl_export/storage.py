"""The one storage seam for export archives: S3 in production, the filesystem in embedded mode.

``get_storage()`` reads the settings at call time. Every backend publishes an object only when
its writer's block exits cleanly, so a failed or killed job never leaves a partial archive
where a client could find it. Temporary failures (network, S3 5xx, throttling) surface as
:class:`StorageError`, which the job may retry; anything else (a wrong bucket, denied access)
propagates as it is, because retrying it cannot help.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import quote

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from django.conf import settings
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage
from storages.utils import clean_name, safe_join

logger = logging.getLogger(__name__)

PART_SIZE = 8 << 20  # S3 wants >= 5 MiB for every part but the last
MAX_PARTS = 10_000
UPLOAD_THREADS = 2
# Parts queued or uploading at once: bounds memory to (1 filling + this many) parts.
MAX_IN_FLIGHT = 2
TEMPORARY_S3_CODES = {"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "InternalError"}
OWNER_PREFIXES = {"Organization": "orgs", "orgs": "orgs", "User": "users", "users": "users"}

T = TypeVar("T")


class StorageError(Exception):
    """A temporary storage failure (network, S3 5xx or throttling): worth retrying later."""


def is_temporary(exc: BaseException) -> bool:
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or exc.response.get("Error", {}).get("Code") in TEMPORARY_S3_CODES
    return False


@contextlib.contextmanager
def temporary_errors_as_storage_error() -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        if is_temporary(exc):
            raise StorageError(f"temporary storage failure: {exc}") from exc
        raise


def _s3_call(function: Callable[..., T], *args: object, **kwargs: object) -> T:
    with temporary_errors_as_storage_error():
        return function(*args, **kwargs)


# --- keys -----------------------------------------------------------------------------------


def _key_part(value: str) -> str:
    # A segment can never hold "/" nor be "." or "..": no path tricks on disk or in S3.
    quoted = quote(value, safe="-_.~@+=,")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def export_key(owner_type: str, owner: str, repo_type: str, repo: str, file_name: str) -> str:
    """``orgs/CIEL/sources/CIEL/CIEL_v1.20161004123113.tgz``.

    The full file name (version, 14-digit stamp and extension) ends the key, so the keys of
    two versions (``v1`` and ``v1.1``) never collide nor match each other as a prefix.
    """
    owner_prefix = OWNER_PREFIXES.get(owner_type)
    if owner_prefix is None:
        raise ValueError(f"unknown owner type {owner_type!r}")
    if repo_type not in ("sources", "collections"):
        raise ValueError(f"unknown repository type {repo_type!r}")
    return "/".join((owner_prefix, _key_part(owner), repo_type, _key_part(repo), _key_part(file_name)))


def content_disposition(file_name: str) -> str:
    """``attachment; filename="..."`` (RFC 6266 ``filename*`` for non-ASCII names)."""
    return content_disposition_header(True, file_name)


# --- the interface ------------------------------------------------------------------------


class ExportStorage(Protocol):
    is_remote: bool

    def open_writer(self, key: str, content_type: str) -> contextlib.AbstractContextManager[BinaryIO]: ...
    def open_reader(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def presigned_url(self, key: str, file_name: str, content_type: str, expires: int | None = None) -> str | None: ...
    def abort_stale_uploads(
        self, prefix: str, older_than_seconds: int, spare: Callable[[], Collection[str]] | None = None
    ) -> int: ...


# --- filesystem -----------------------------------------------------------------------------

PARTIAL = ".partial-"


class FileSystemExportStorage:
    """Files under ``EXPORT_STORAGE_DIR``; written to ``<name>.partial-<random>`` then renamed."""

    is_remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        root = self.root.resolve()
        path = (root / key).resolve()
        if path == root or not path.is_relative_to(root):
            raise ValueError(f"key {key!r} leaves the export directory")
        return path

    @contextlib.contextmanager
    def open_writer(self, key: str, content_type: str) -> Iterator[BinaryIO]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target: os.replace is then an atomic rename on one filesystem.
        fd, partial = tempfile.mkstemp(prefix=f"{path.name}{PARTIAL}", dir=path.parent)
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as file:
                yield file
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise

    def open_reader(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, file_name: str, content_type: str, expires: int | None = None) -> str | None:
        return None  # the service streams the file itself

    def abort_stale_uploads(
        self, prefix: str, older_than_seconds: int, spare: Callable[[], Collection[str]] | None = None
    ) -> int:
        # ``prefix`` is a string prefix of keys, as in S3: a directory ("orgs/CIEL/") or a whole
        # key, whose partial files sit beside it. ``spare`` (asked after the files are found):
        # keys whose partial files stay, whatever their age.
        base = self.root / prefix if not prefix or prefix.endswith("/") else (self.root / prefix).parent
        if not base.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        found = [p for p in base.rglob(f"*{PARTIAL}*") if p.relative_to(self.root).as_posix().startswith(prefix)]
        kept = set(spare()) if spare is not None and found else set()
        removed = 0
        for partial in found:
            if partial.with_name(partial.name.split(PARTIAL)[0]).relative_to(self.root).as_posix() in kept:
                continue
            with contextlib.suppress(FileNotFoundError):
                if partial.is_file() and partial.stat().st_mtime <= cutoff:
                    partial.unlink()
                    removed += 1
        return removed


# --- S3 -------------------------------------------------------------------------------------


class MultipartWriter(io.RawIOBase):
    """Buffers writes into parts and uploads each as it fills, a few in parallel threads.

    Nothing is visible in the bucket until :meth:`complete`; :meth:`abort` discards the
    upload. An archive smaller than one part goes up as a single PUT on completion.
    """

    def __init__(self, client: object, bucket: str, key: str, extra: dict[str, str]) -> None:
        super().__init__()
        self.client = client
        self.bucket = bucket
        self.key = key
        self.extra = extra
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[Future[dict[str, object]]] = []
        self.executor: ThreadPoolExecutor | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.buffer += data
        while len(self.buffer) >= self._part_size(len(self.parts) + 1):
            size = self._part_size(len(self.parts) + 1)
            self._submit(bytes(self.buffer[:size]))
            del self.buffer[:size]
        return len(data)

    @staticmethod
    def _part_size(number: int) -> int:
        # Grow parts every 1,000 so that 10,000 parts still hold hundreds of GB.
        return PART_SIZE * (1 + (number - 1) // 1000)

    def _submit(self, body: bytes) -> None:
        if self.upload_id is None:
            created = _s3_call(self.client.create_multipart_upload, Bucket=self.bucket, Key=self.key, **self.extra)
            self.upload_id = created["UploadId"]
            self.executor = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="s3-part")
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise ValueError("archive too large for one multipart upload")
        # Wait for the oldest part first so that memory stays bounded.
        pending = [part for part in self.parts if not part.done()]
        if len(pending) >= MAX_IN_FLIGHT:
            pending[0].result()
        assert self.executor is not None
        self.parts.append(self.executor.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytes) -> dict[str, object]:
        response = _s3_call(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def complete(self) -> None:
        if self.upload_id is None:
            _s3_call(self.client.put_object, Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer), **self.extra)
            self.buffer.clear()
            return
        if self.buffer or not self.parts:
            self._submit(bytes(self.buffer))
            self.buffer.clear()
        parts = [part.result() for part in self.parts]
        self._shutdown()
        _s3_call(
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort(self) -> None:
        self.buffer.clear()
        self._shutdown()
        if self.upload_id is None:
            return
        try:
            # Parts still uploading when the abort lands could linger, hence the shutdown first.
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:
            # Keep the original error; the stale-upload sweeper removes what is left.
            logger.warning("could not abort multipart upload %s of %s", self.upload_id, self.key, exc_info=True)

    def _shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None


class S3ExportStorage:
    """A bucket, configured by django-storages from the AWS_* settings; multipart with boto3."""

    is_remote = True

    def __init__(self, storage: S3Storage, sse: str) -> None:
        self.storage = storage
        self.sse = sse

    @property
    def client(self) -> object:
        return self.storage.connection.meta.client

    @property
    def bucket(self) -> str:
        return self.storage.bucket_name

    def full_key(self, key: str) -> str:
        """The object's key in the bucket: under AWS_LOCATION, as django-storages names it."""
        return safe_join(self.storage.location, clean_name(key))

    def _object_parameters(self, content_type: str) -> dict[str, str]:
        # ContentType only: a Content-Encoding: gzip would make clients unpack the .tgz in transit.
        extra = {"ContentType": content_type}
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        return extra

    @contextlib.contextmanager
    def open_writer(self, key: str, content_type: str) -> Iterator[BinaryIO]:
        # Not django-storages' S3File in write mode: closing it inside an exception would
        # still complete the upload and publish a partial archive.
        writer = MultipartWriter(self.client, self.bucket, self.full_key(key), self._object_parameters(content_type))
        try:
            yield writer  # type: ignore[misc]
            writer.complete()
        except BaseException:
            writer.abort()
            raise

    def open_reader(self, key: str) -> BinaryIO:
        response = _s3_call(self.client.get_object, Bucket=self.bucket, Key=self.full_key(key))
        return response["Body"]

    def exists(self, key: str) -> bool:
        return _s3_call(self.storage.exists, key)

    def size(self, key: str) -> int:
        return _s3_call(self.storage.size, key)

    def delete(self, key: str) -> None:
        _s3_call(self.storage.delete, key)

    def presigned_url(self, key: str, file_name: str, content_type: str, expires: int | None = None) -> str | None:
        parameters = {
            "ResponseContentDisposition": content_disposition(file_name),
            "ResponseContentType": content_type,
        }
        ttl = settings.EXPORT_PRESIGN_TTL if expires is None else expires
        return _s3_call(self.storage.url, key, parameters=parameters, expire=ttl)

    def abort_stale_uploads(
        self, prefix: str, older_than_seconds: int, spare: Callable[[], Collection[str]] | None = None
    ) -> int:
        """Abort incomplete multipart uploads (a killed job's) under ``prefix``.

        ``older_than_seconds`` must exceed the longest job, or a live upload would be aborted;
        ``spare`` names keys whose uploads stay whatever their age. It is asked after the listing,
        so an upload started meanwhile is either not listed or its key already spared.
        """
        full_prefix = self.full_key(prefix) if prefix else self.storage.location.strip("/")
        if prefix.endswith("/") and not full_prefix.endswith("/"):
            full_prefix += "/"
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        aborted = 0
        with temporary_errors_as_storage_error():
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full_prefix)
            found = [
                upload
                for page in pages
                for upload in page.get("Uploads", [])
                if upload["Key"].startswith(full_prefix) and upload["Initiated"] <= cutoff
            ]
            kept = {self.full_key(key) for key in spare()} if spare is not None and found else set()
            for upload in found:
                if upload["Key"] in kept:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise
                    continue  # completed or aborted since the listing
                aborted += 1
        return aborted


# --- choosing one from the settings -----------------------------------------------------------

_s3_storages: dict[tuple[object, ...], S3Storage] = {}


def _s3_storage() -> S3Storage:
    # Building boto3 sessions costs tens of ms: keep one S3Storage per configuration (tests
    # switch settings per test, so the settings are the cache key, read at every call).
    config = (
        settings.AWS_STORAGE_BUCKET_NAME,
        settings.AWS_S3_ENDPOINT_URL,
        settings.AWS_S3_REGION_NAME,
        settings.AWS_ACCESS_KEY_ID,
        settings.AWS_SECRET_ACCESS_KEY,
        settings.AWS_LOCATION,
        settings.AWS_S3_CONNECT_TIMEOUT,
        settings.AWS_S3_READ_TIMEOUT,
        settings.AWS_S3_MAX_ATTEMPTS,
    )
    storage = _s3_storages.get(config)
    if storage is None:
        bucket, endpoint, region, access_key, secret_key, location, connect_timeout, read_timeout, attempts = config
        signature_version = getattr(settings, "AWS_S3_SIGNATURE_VERSION", None) or "s3v4"
        storage = S3Storage(
            bucket_name=bucket,
            endpoint_url=endpoint,
            region_name=region,
            access_key=access_key,
            secret_key=secret_key,
            location=posixpath.normpath(location).strip("/") if location else "",
            file_overwrite=True,
            # SigV4: required by newer AWS regions, and its URLs state their own expiry.
            signature_version=signature_version,
            # Bounded waits: an unreachable or stalled S3 fails a call (StorageError, retried by the
            # job later) within connect/read timeout x attempts, instead of botocore's minutes.
            client_config=Config(
                signature_version=signature_version,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": attempts, "mode": "standard"},
            ),
        )
        _s3_storages[config] = storage
    return storage


def get_storage() -> FileSystemExportStorage | S3ExportStorage:
    if settings.EXPORT_STORAGE == "s3":
        return S3ExportStorage(_s3_storage(), settings.AWS_S3_SSE)
    return FileSystemExportStorage(Path(settings.EXPORT_STORAGE_DIR))
