"""What gunicorn itself logs about downloads: their real size, and no complaint about HEAD bodies."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, wait_until

pytestmark = pytest.mark.live

VERSION = "/orgs/CIELTEST/sources/CIELTEST/v1/"
IMPORT_AND_EXPORT = """
from django.core.management import call_command
from ocl_export.jobs import run_export
from ocl_export.models import Export
from repos.models import RepositoryVersion
call_command("import_ocl", {path!r}, "--version", "v1", "--quiet")
run_export(Export.create_pending(RepositoryVersion.objects.get(version="v1"), "tgz", None).pk)
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with LiveStack("accesslog", storage="filesystem") as stack:
        # one process for both (each manage.py start costs seconds on a loaded machine)
        stack.shell(IMPORT_AND_EXPORT.format(path=str(FIXTURES / "ocl-v1-CIELTEST-2015.zip")))
        yield stack


def test_a_file_download_is_logged_with_its_size_and_a_head_of_a_used_link_without_a_warning(stack) -> None:
    location = requests.get(stack.url(f"{VERSION}export/"), allow_redirects=False, timeout=10).headers["Location"]
    download = requests.get(location, timeout=10)
    assert download.status_code == 200
    size = len(download.content)
    assert int(download.headers["Content-Length"]) == size > 0
    assert requests.head(location, timeout=10).status_code == 410
    path = location.removeprefix(stack.base_url)
    line = rf'"GET {re.escape(path)} HTTP/1.1" 200 {size} '
    wait_until(lambda: re.search(line, stack.log("web")), timeout=10, what="the download's access log line")
    # gunicorn writes an access line after the response has gone: the client may be faster.
    head_line = rf'"HEAD {re.escape(path)} HTTP/1.1" 410 '
    wait_until(lambda: re.search(head_line, stack.log("web")), timeout=10, what="the HEAD's access log line")
    assert "no-body response" not in stack.log("web")
