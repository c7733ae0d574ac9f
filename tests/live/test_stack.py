"""The live stack itself: it serves the API, runs an export through a real worker into its S3
server, and survives a process being killed and started again."""

from __future__ import annotations

import io
import signal
import tarfile
from collections.abc import Iterator

import orjson
import pytest
import requests

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

pytestmark = pytest.mark.live

EXPORT = "/orgs/CIELTEST/sources/CIELTEST/v1/export/"


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with LiveStack("smoke", reaper=True) as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIELTEST-2015.zip", "--version", "v1")
        yield stack


def exported_json(stack: LiveStack, token: str) -> dict:
    auth = {"Authorization": f"Token {token}"}
    answer = requests.get(stack.url(EXPORT), allow_redirects=False, timeout=10)
    if answer.status_code == 204:
        assert requests.post(stack.url(EXPORT), headers=auth, timeout=10).status_code == 202
        answer = wait_until(
            lambda: (r := requests.get(stack.url(EXPORT), allow_redirects=False, timeout=10)).status_code == 303 and r,
            timeout=60,
            what="the export to complete",
        )
    assert answer.status_code == 303, answer.text
    archive = requests.get(answer.headers["Location"], timeout=10)  # one-use link, then S3
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        return orjson.loads(tar.extractfile("export.json").read())  # type: ignore[union-attr]


def test_it_exports_through_a_real_worker_into_its_own_s3_server(stack: LiveStack) -> None:
    token = stack.make_user("alice", admin_of="CIELTEST")
    body = exported_json(stack, token)
    assert (len(body["concepts"]), len(body["mappings"])) == (100, 100)
    assert stack.s3_client().list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 1


def test_a_killed_process_can_be_started_again(stack: LiveStack) -> None:
    stack.kill("web", signal.SIGKILL)
    with pytest.raises(requests.ConnectionError):
        requests.get(stack.url("/orgs/CIELTEST/sources/CIELTEST/"), timeout=2)
    stack.start_process("web")
    assert requests.get(stack.url("/orgs/CIELTEST/sources/CIELTEST/"), timeout=10).status_code == 200

    stack.kill("redis", signal.SIGKILL)
    stack.start_process("redis")
    assert stack.horse_pids() == []  # no job in hand
