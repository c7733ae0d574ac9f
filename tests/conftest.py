"""Shared fixtures: named actors, API clients, and the real services the suite talks to.

PostgreSQL and Redis are the machine's (started by ``deploy/test-services.sh``); the S3 server is
a moto server process on a free loopback port, started once per session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ocl_export.profiles import DEFAULT_FORMATS, V2
from repos.models import Membership, Organization
from tests.s3server import start_moto

FIXTURES = Path(__file__).parent / "fixtures"


# --- actors ---------------------------------------------------------------------------------


@pytest.fixture
def org(db):
    return Organization.objects.create(mnemonic="CIEL", name="Columbia International eHealth Laboratory")


def _user(django_user_model, username: str, **extra):
    user = django_user_model.objects.create_user(username=username, password="pw", **extra)
    Token.objects.create(user=user, key=f"{username}-token".ljust(40, "0")[:40])
    return user


@pytest.fixture
def alice(db, django_user_model, org):
    """Admin of the CIEL organization."""
    user = _user(django_user_model, "alice")
    Membership.objects.create(organization=org, user=user, role=Membership.ADMIN)
    return user


@pytest.fixture
def bob(db, django_user_model, org):
    """Plain member of the CIEL organization."""
    user = _user(django_user_model, "bob")
    Membership.objects.create(organization=org, user=user, role=Membership.MEMBER)
    return user


@pytest.fixture
def charlie(db, django_user_model):
    """An outsider: authenticated, in no organization."""
    return _user(django_user_model, "charlie")


@pytest.fixture
def staff(db, django_user_model):
    return _user(django_user_model, "staff", is_staff=True)


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_client(alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def bob_client(bob) -> APIClient:
    return client_for(bob)


@pytest.fixture
def charlie_client(charlie) -> APIClient:
    return client_for(charlie)


@pytest.fixture
def staff_client(staff) -> APIClient:
    return client_for(staff)


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def redis_conn() -> Iterator[redis.Redis]:
    """The tests' own Redis database, flushed around each test."""
    conn = redis.Redis.from_url(django_settings.REDIS_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()


# --- S3 over HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server process on loopback; yields its endpoint URL."""
    process, endpoint = start_moto()
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def s3_bucket(s3_server: str, settings, request):
    """Switch export storage to S3 on the test server, with a fresh bucket for this test."""
    bucket = f"exports-{abs(hash(request.node.nodeid)) % 10**10}-{time.monotonic_ns() % 10**6}"
    client = boto3.client("s3", endpoint_url=s3_server, **S3_CREDENTIALS)
    client.create_bucket(Bucket=bucket)
    settings.EXPORT_STORAGE = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = s3_server
    settings.AWS_ACCESS_KEY_ID = S3_CREDENTIALS["aws_access_key_id"]
    settings.AWS_SECRET_ACCESS_KEY = S3_CREDENTIALS["aws_secret_access_key"]
    settings.AWS_S3_REGION_NAME = S3_CREDENTIALS["region_name"]
    return client, bucket


@pytest.fixture
def fs_storage(settings, tmp_path):
    """Filesystem export storage in a fresh directory."""
    settings.EXPORT_STORAGE = "filesystem"
    settings.EXPORT_STORAGE_DIR = tmp_path / "exports"
    return settings.EXPORT_STORAGE_DIR


# --- profiles -------------------------------------------------------------------------------


@pytest.fixture
def ocl_v2(settings) -> None:
    """The OCL v2 profile, set up as ``OCL_COMPAT=v2`` does at start-up (zip by default)."""
    settings.OCL_COMPAT = V2
    settings.EXPORT_DEFAULT_FORMAT = DEFAULT_FORMATS[V2]
