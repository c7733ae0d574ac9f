"""HEAD answers leave the application without a body, whatever the route or the status.

Django's test client drops HEAD bodies itself, so these go through the WSGI handler as gunicorn
calls it: a body there is what made gunicorn log "WSGI app sent body bytes on a no-body response".
"""

from __future__ import annotations

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from tests.export_support import EXPORT_URL, ciel_v1, work

pytestmark = pytest.mark.django_db(transaction=True)


def through_wsgi(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    found: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        found.update(status=int(status.split()[0]), headers=dict(headers))

    environ = RequestFactory().generic(method, path).environ
    response = WSGIHandler()(environ, start_response)
    try:
        body = b"".join(response)
    finally:
        response.close()
    return found["status"], found["headers"], body  # type: ignore[return-value]


@pytest.fixture
def used_location(org, alice_client, anon_client, redis_conn, fs_storage) -> str:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    location = anon_client.get(EXPORT_URL)["Location"]
    assert anon_client.get(location).status_code == 200
    return location.removeprefix("http://testserver")


def test_a_head_of_a_used_location_is_410_with_no_body(used_location) -> None:
    status, headers, body = through_wsgi("HEAD", used_location)
    assert (status, body) == (410, b"")
    get_status, _, get_body = through_wsgi("GET", used_location)
    assert get_status == 410 and get_body.startswith(b'{"detail"')
    assert headers["Content-Length"] == str(len(get_body))


def test_a_head_of_an_unknown_path_or_of_a_version_has_no_body(used_location) -> None:
    assert through_wsgi("HEAD", "/nothing-here/")[::2] == (404, b"")
    status, headers, body = through_wsgi("HEAD", "/orgs/CIEL/sources/CIEL/v1/")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0


def test_a_head_of_an_unused_location_has_the_file_headers_and_no_body(
    org, alice_client, anon_client, redis_conn, fs_storage
) -> None:
    ciel_v1(org)
    alice_client.post(EXPORT_URL)
    work()
    location = anon_client.get(EXPORT_URL)["Location"].removeprefix("http://testserver")
    status, headers, body = through_wsgi("HEAD", location)
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0
    assert through_wsgi("GET", location)[0] == 200  # the HEAD did not use it up
