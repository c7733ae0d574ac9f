"""Every row of the "OCL v2" column of clients.md, against the live service in the v2 profile.

One row per case; each brings the export to the state the row names (none, being produced,
done), makes the request and checks the answer. "Being produced" holds the worker stopped, so
the export stays pending for as long as the row needs.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests

from tests.clients.conftest import ADMIN_TOKEN, DEMO_URL, MEMBER_TOKEN, REFAPP_URL, REFAPP_VERSION, Deployment

pytestmark = pytest.mark.live

VERSION = f"{REFAPP_URL}{REFAPP_VERSION}/"
HEAD_OF_DEMO = f"{DEMO_URL}HEAD/"


@dataclass(frozen=True)
class Row:
    case: str  # the row of clients.md
    state: str  # none | busy | done | any
    method: str
    expected: tuple[int, ...]
    version: str = VERSION
    token: str | None = ADMIN_TOKEN
    archive: bool = False  # the Location must answer 200 with a zip holding export.json


ROWS = [
    Row("GET, export done: 302 to the storage URL, which answers 200", "done", "GET", (302,), archive=True),
    Row("HEAD, export done: 302", "done", "HEAD", (302,)),
    Row("GET, being produced: 208", "busy", "GET", (208,)),
    Row("HEAD, being produced: 208", "busy", "HEAD", (208,)),
    Row("GET, none: 204", "none", "GET", (204,)),
    Row("HEAD, none: 204", "none", "HEAD", (204,)),
    Row("POST, none: 202", "none", "POST", (202,)),
    Row("POST, being produced: 208", "busy", "POST", (208,)),
    Row("POST, done: 303", "done", "POST", (303,)),
    Row("DELETE, done: 204", "done", "DELETE", (204,)),
    Row("DELETE, none: 404", "none", "DELETE", (404,)),
    Row("GET on HEAD by a repository admin: allowed", "any", "GET", (204, 208, 302), HEAD_OF_DEMO),
    Row("POST on HEAD by a repository admin: allowed", "any", "POST", (202, 208, 303), HEAD_OF_DEMO),
    Row("GET on HEAD by a member: 405", "any", "GET", (405,), HEAD_OF_DEMO, MEMBER_TOKEN),
    Row("POST on HEAD by a member: 405", "any", "POST", (405,), HEAD_OF_DEMO, MEMBER_TOKEN),
    Row("DELETE on HEAD by a member: 405", "any", "DELETE", (405,), HEAD_OF_DEMO, MEMBER_TOKEN),
    Row("GET on HEAD anonymously: 405", "any", "GET", (405,), HEAD_OF_DEMO, None),
    Row("archive: zip holding export.json", "done", "GET", (302,), archive=True),
]


@contextmanager
def in_state(deployment: Deployment, row: Row) -> Iterator[None]:
    if row.state == "done":
        deployment.ensure_exported(row.version)
    elif row.state in ("none", "busy"):
        deployment.ensure_no_export(row.version)
    if row.state != "busy":  # done, none, or any state at all
        yield
        return
    with deployment.worker_paused():
        queued = requests.post(deployment.url(f"{row.version}export/"), headers=deployment.auth(), timeout=30)
        assert queued.status_code == 202
        yield


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_the_v2_column_of_clients_md(v2: Deployment, row: Row) -> None:
    headers = {"Authorization": f"Token {row.token}"} if row.token else {}
    with in_state(v2, row):
        answer = requests.request(
            row.method, v2.url(f"{row.version}export/"), headers=headers, allow_redirects=False, timeout=30
        )
    assert answer.status_code in row.expected, answer.text
    if answer.status_code == 208:
        assert answer.request.method == "HEAD" or answer.json()["state"] == "pending"
    if row.archive:
        archive = requests.get(answer.headers["Location"], allow_redirects=False, timeout=30)
        assert archive.status_code == 200
        assert archive.headers["Content-Type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
            assert bundle.namelist() == ["export.json"]
