"""``/healthz`` (liveness) and ``/readyz`` (readiness): what an orchestrator or load balancer polls.

Readiness is tried with each dependency down (a closed port) and hanging (a port that accepts
connections and never answers): /readyz must answer 503 naming it, within READYZ_TIMEOUT.
The real processes stopped with SIGSTOP are in tests/live/test_operations_live.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.test import Client

from tests.live.stack import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose listener accepts connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def ready_settings(settings, fs_storage):
    # Generous for the answers that come (a loaded machine), short where a test waits for a hang.
    settings.READYZ_TIMEOUT = 5
    return settings


@pytest.fixture
def hang_settings(ready_settings):
    ready_settings.READYZ_TIMEOUT = 1
    return ready_settings


def readyz(client: Client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/readyz")
    return response.status_code, response.json(), time.monotonic() - started


def test_healthz_answers_ok_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("no-cache")


def test_healthz_refuses_post_with_json(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["detail"]


def test_readyz_is_ready_when_database_redis_and_storage_answer(client, ready_settings):
    status, body, _ = readyz(client)
    assert status == 200, body
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "storage": True,
    }


def test_readyz_writes_and_removes_a_probe_object_in_the_bucket(client, ready_settings, s3_bucket):
    s3, bucket = s3_bucket
    status, body, _ = readyz(client)
    assert status == 200, body
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_readyz_names_a_database_that_refuses_connections_and_not_where_it_is(client, ready_settings):
    port = str(free_port())
    ready_settings.DATABASES = {"default": {**ready_settings.DATABASES["default"], "PORT": port}}
    status, body, elapsed = readyz(client)
    assert status == 503
    assert body["failed"] == ["database"]
    assert body["detail"] == "Not ready: database."
    assert body["checks"]["database"]["detail"] == "OperationalError"
    assert port not in str(body)  # internal addresses stay in the log
    assert elapsed < 3


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_readyz_gives_up_on_a_database_that_never_answers_within_the_timeout(client, hang_settings, silent_port):
    hang_settings.DATABASES = {"default": {**hang_settings.DATABASES["default"], "PORT": str(silent_port)}}
    status, body, elapsed = readyz(client)
    assert status == 503
    assert body["failed"] == ["database"]
    assert "no answer within 1 s" in body["checks"]["database"]["detail"]
    assert elapsed < 2.5


def test_readyz_names_redis_when_it_refuses_connections(client, ready_settings):
    ready_settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    status, body, elapsed = readyz(client)
    assert status == 503
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"]["detail"] == "ConnectionError"
    assert elapsed < 3


def test_readyz_gives_up_on_a_redis_that_never_answers_within_the_timeout(client, hang_settings, silent_port):
    hang_settings.REDIS_URL = f"redis://127.0.0.1:{silent_port}/0"
    status, body, elapsed = readyz(client)
    assert status == 503
    assert body["failed"] == ["redis"]
    assert elapsed < 2.5


def test_readyz_names_an_export_directory_it_cannot_write(client, ready_settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    ready_settings.EXPORT_STORAGE_DIR = blocker / "exports"
    status, body, _ = readyz(client)
    assert status == 503
    assert body["failed"] == ["storage"]


def test_readyz_names_a_missing_bucket(client, ready_settings, s3_bucket):
    ready_settings.AWS_STORAGE_BUCKET_NAME = "no-such-bucket-here"
    status, body, _ = readyz(client)
    assert status == 503
    assert body["failed"] == ["storage"]
    assert body["checks"]["storage"]["detail"] == "NoSuchBucket"


def test_a_hanging_bucket_fails_readyz_on_time_and_is_not_probed_twice_at_once(
    client, hang_settings, s3_bucket, silent_port
):
    hang_settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{silent_port}"
    status, body, elapsed = readyz(client)
    assert status == 503
    assert body["failed"] == ["storage"]
    assert elapsed < 2.5
    status, body, elapsed = readyz(client)
    assert status == 503
    assert "still waiting" in body["checks"]["storage"]["detail"]
    assert elapsed < 2.5
