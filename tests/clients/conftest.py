"""One live deployment per profile, loaded with the real fixtures, for the real OCL clients.

Each stack (gunicorn, one RQ worker, the session's moto S3 server) starts once per test run and
is shared by every client test of its profile: starting and loading one costs seconds, a test
only milliseconds. The fixtures are package-scoped, so both stacks stop (and give their database
connections back) as soon as the last test of this directory has run. Tests leave the exports
they make behind; each test names the state it needs.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

CIEL = FIXTURES / "ocl-v1-CIEL-subset-2015.tgz"
DEMO = FIXTURES / "ocl-v2-DemoSource_v1.0.20230526120030.zip"
REFAPP = FIXTURES / "ocl-v1-collection-refapp.json"

CIEL_URL = "/orgs/CIEL/sources/CIEL/"
CIEL_VERSION = "v2015-06-22"
DEMO_URL = "/orgs/DemoOrg/sources/DemoSource/"
DEMO_VERSION = "v1.0"
REFAPP_URL = "/orgs/openmrs/collections/reference-application/"
REFAPP_VERSION = "v1.0-beta.2"

ADMIN_TOKEN = "clients-admin-token".ljust(40, "0")
MEMBER_TOKEN = "clients-member-token".ljust(40, "0")

# One Django process loads everything: the three real files, an admin of their three owners, and
# a plain member of DemoOrg.
LOAD = f"""
from pathlib import Path
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from repos.importers import import_file
from repos.models import Membership, Organization
for path in ({str(CIEL)!r}, {str(DEMO)!r}, {str(REFAPP)!r}):
    import_file(Path(path))
users = get_user_model().objects
admin = users.create_user(username="admin")
Token.objects.create(user=admin, key={ADMIN_TOKEN!r})
member = users.create_user(username="member")
Token.objects.create(user=member, key={MEMBER_TOKEN!r})
for org in Organization.objects.all():
    Membership.objects.create(organization=org, user=admin, role=Membership.ADMIN)
Membership.objects.create(organization=Organization.objects.get(mnemonic="DemoOrg"), user=member, role=Membership.MEMBER)
"""


@dataclass
class Deployment:
    """A running stack in one profile, and what the client tests do to it."""

    stack: LiveStack
    profile: str

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def url(self, path: str) -> str:
        return self.stack.url(path)

    def auth(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return {"Authorization": f"Token {token}"}

    def export_status(self, path: str) -> int:
        return requests.get(self.url(path), allow_redirects=False, timeout=30).status_code

    def ready_status(self) -> int:
        return 302 if self.profile == "v2" else 303

    def ensure_exported(self, version_path: str, fmt: str | None = None) -> None:
        """Make sure the export of a version exists (POST, then wait for the worker)."""
        query = f"?format={fmt}" if fmt else ""
        url = self.url(f"{version_path}export/{query}")
        if self.export_status(f"{version_path}export/{query}") == self.ready_status():
            return
        answer = requests.post(url, headers=self.auth(), allow_redirects=False, timeout=30)
        assert answer.status_code in (202, 208, 409), answer.text
        wait_until(
            lambda: self.export_status(f"{version_path}export/{query}") == self.ready_status(),
            timeout=90,
            what=f"the export of {version_path}",
        )

    def ensure_no_export(self, version_path: str) -> None:
        """Delete the version's exports, once any export under way has finished (409 until then)."""
        url = self.url(f"{version_path}export/")
        wait_until(
            lambda: requests.delete(url, headers=self.auth(), timeout=30).status_code != 409,
            timeout=90,
            what=f"the deletion of the export of {version_path}",
        )
        assert self.export_status(f"{version_path}export/") == 204

    @contextmanager
    def worker_paused(self) -> Iterator[None]:
        """The worker (and its scheduler) stopped: exports queued meanwhile stay pending."""
        self.stack.kill("worker", signal.SIGSTOP)
        try:
            yield
        finally:
            self.stack.kill("worker", signal.SIGCONT)


def deployment(name: str, profile: str, s3_endpoint: str) -> Iterator[Deployment]:
    # One scripted admin makes more export writes here in minutes (a DELETE until it stops being
    # 409, a POST per case) than a fleet makes in a day: the rate limit is checked, but high.
    env = {"OCL_COMPAT": profile, "RATE_LIMIT_EXPORT_WRITES": "100000/hour"}
    with LiveStack(name, env=env, s3_endpoint=s3_endpoint) as stack:
        stack.shell(LOAD)
        yield Deployment(stack, profile)


@pytest.fixture(scope="package")
def v2(s3_server: str) -> Iterator[Deployment]:
    yield from deployment("clients-v2", "v2", s3_server)


@pytest.fixture(scope="package")
def v1(s3_server: str) -> Iterator[Deployment]:
    yield from deployment("clients-v1", "v1", s3_server)


@pytest.fixture(scope="package", params=["v1", "v2"])
def each_profile(request) -> Deployment:
    return request.getfixturevalue(request.param)
