"""Absolute URLs name this service, never what a request's Host header says (host header poisoning).

With ``PUBLIC_BASE_URL`` set, every Location, status link and job link starts with it. Without
it they name the request's host, which must then be one of ``ALLOWED_HOSTS``: the default list
is loopback only, and ``*`` without a base URL stops the service at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.export_support import EXPORT_URL, ciel_v1, work

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://ocl.example.org"
EVIL = "evil.example"


@pytest.fixture
def public_base_url(settings) -> str:
    settings.PUBLIC_BASE_URL = BASE
    settings.ALLOWED_HOSTS = ["*"]
    return BASE


@pytest.mark.django_db(transaction=True)
def test_with_a_public_base_url_a_forged_host_does_not_reach_the_links(
    org, alice_client, anon_client, redis_conn, fs_storage, public_base_url
) -> None:
    ciel_v1(org)
    queued = alice_client.post(EXPORT_URL, HTTP_HOST=EVIL)
    assert queued.status_code == 202
    job = queued.json()
    assert job["url"].startswith(f"{BASE}/exports/jobs/")
    assert all(link.startswith(f"{BASE}/") for link in job["links"].values())
    assert queued["Link"].startswith(f"<{BASE}/exports/jobs/")
    work()
    location = anon_client.get(EXPORT_URL, HTTP_HOST=EVIL)["Location"]
    assert location.startswith(f"{BASE}/exports/download/")
    assert anon_client.get(location.removeprefix(BASE)).status_code == 200


@pytest.mark.django_db
def test_without_one_a_host_outside_the_allowed_list_is_a_json_400(org, anon_client) -> None:
    ciel_v1(org)
    response = anon_client.get(EXPORT_URL, HTTP_HOST=EVIL)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert anon_client.get(EXPORT_URL, HTTP_HOST="127.0.0.1:8000").status_code == 204


def start_settings(**env: str) -> subprocess.CompletedProcess:
    """Load the production settings in a fresh interpreter, as gunicorn or a worker would."""
    environ = {k: v for k, v in os.environ.items() if k not in ("ALLOWED_HOSTS", "PUBLIC_BASE_URL")}
    environ.update(env)
    code = "import ocl_export.settings as s; print(s.ALLOWED_HOSTS, s.PUBLIC_BASE_URL)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True)


def test_the_service_refuses_to_start_with_any_host_and_no_public_base_url() -> None:
    refused = start_settings(ALLOWED_HOSTS="*")
    assert refused.returncode != 0
    assert "PUBLIC_BASE_URL" in refused.stderr
    started = start_settings(ALLOWED_HOSTS="*", PUBLIC_BASE_URL=f"{BASE}/")
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["['*']", BASE]


def test_a_public_base_url_is_a_scheme_and_a_host_only() -> None:
    for bad in ("ocl.example.org", "ftp://ocl.example.org", f"{BASE}/api", f"{BASE}?x=1"):
        refused = start_settings(PUBLIC_BASE_URL=bad)
        assert refused.returncode != 0, bad
        assert "PUBLIC_BASE_URL must be" in refused.stderr
