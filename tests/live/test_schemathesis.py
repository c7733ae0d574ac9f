"""schemathesis against the live service (gunicorn, a worker, PostgreSQL, Redis, S3): every answer
is described by /openapi.json, and none is a 5xx.

Bounded for CI: the fuzzing phase only, a few examples per operation, a fixed seed (a failure
prints the case to reproduce it). The path's owner, repository, version and item are pinned to
the imported CIELTEST so that operations reach real content (2xx bodies checked against their
schemas) instead of answering 404 to random names; the hostile-input table fuzzes those segments.
Deleting the version is left out: it would leave nothing to read for the cases after it. The
operators' routes are fuzzed too: /healthz and /readyz answer as anywhere, /metrics its 404 (off:
this stack sets neither METRICS_TOKEN nor METRICS_BIND).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack

pytestmark = pytest.mark.live

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = """
[parameters]
"path.owner" = "CIELTEST"
"path.repo" = "CIELTEST"
"path.version" = "v1"
"path.item" = "1001"

# /readyz answers 503, as described, when a dependency is slower than READYZ_TIMEOUT: on a loaded
# machine that is the right answer, not a server error.
[[operations]]
include-operation-id = "get_readyz"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""
EXAMPLES = 6
SEED = 20261202
SERVER_ERROR = re.compile(r'" (5\d\d) ')


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with LiveStack("schemathesis") as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIELTEST-2015.zip", "--version", "v1")
        yield stack


def test_schemathesis_finds_no_server_error_and_no_answer_the_schema_does_not_describe(
    stack: LiveStack, tmp_path: Path
) -> None:
    token = stack.make_user("alice", admin_of="CIELTEST")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        stack.url("/openapi.json"),
        "--header",
        f"Authorization: Token {token}",
        "--checks",
        "all",
        "--phases",
        "fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--exclude-operation-id",
        "delete_owner_kind_owner_repo_type_repo_version",
        "--exclude-operation-id",
        "delete_owner_kind_repo_type_repo_version",
        "--no-color",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    print(output[-1500:])  # the summary: operations, phases, cases generated and passed
    assert done.returncode == 0, output[-8000:]
    assert re.search(r"\d+ generated, \d+ passed", output), output[-2000:]
    served = [int(code) for code in SERVER_ERROR.findall(stack.log("web"))]
    assert [code for code in served if code != 503] == []
    assert "Traceback" not in stack.log("web")


# Through gunicorn: what the in-process table (tests/test_hostile_input.py) cannot see.
LIVE_HOSTILE = [
    "/orgs/%00/sources/",
    "/orgs/CIELTEST/sources/CIELTEST/v1%00/export/",
    "/orgs/CIELTEST/sources/CIELTEST/v1/concepts/a%00b/",
    "/orgs/CIELTEST/sources/..%2F..%2Fetc%2Fpasswd/",
    "/orgs/CIELTEST/sources/%FF%FE/",
    "/orgs/CIELTEST/sources/CIELTEST/v1/?limit=" + "9" * 40,
    "/orgs/CIELTEST/sources/CIELTEST/v1/?updatedSince=2023-05-01T00:00:00%2B99:00",
    "/exports/jobs/" + "9" * 40 + "/",
    "/orgs/" + "x" * 3000 + "/sources/",
]


def test_hostile_requests_through_gunicorn_answer_json_below_500(stack: LiveStack) -> None:
    for path in LIVE_HOSTILE:
        answer = requests.get(stack.url(path), timeout=30)
        assert 400 <= answer.status_code < 500, (path[:80], answer.status_code)
        assert answer.headers["Content-Type"] == "application/json", path[:80]


def test_a_request_line_past_gunicorns_limit_is_its_own_414(stack: LiveStack) -> None:
    """gunicorn refuses a request line over 4094 bytes (limit_request_line) before Django sees it:
    a plain-text 414, the one error that is not JSON (README, Bad input)."""
    answer = requests.get(stack.url("/orgs/" + "x" * 10_000 + "/sources/"), timeout=30)
    assert answer.status_code == 414
