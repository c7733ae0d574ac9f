"""No input gives a 5xx: a table of hostile path segments and query values over every route.

Each route's path is built from a template with valid values (which answer 2xx/3xx), then each
segment in turn is replaced by a hostile value: NUL, very long, non-ASCII, traversal, invalid
UTF-8, huge and negative numbers. Every answer must be below 500 and, when it is an error, JSON.
The table is checked against the URL configuration, so a new route without a row here fails.
"""

from __future__ import annotations

import re
from datetime import timedelta
from string import Formatter

import pytest
from django.urls import get_resolver, resolve
from django.utils import timezone

from mirror.models import Subscription
from ocl_export.models import Export, ExportState
from tests.factories import add_concept, add_mapping, make_source, make_version

VALID = {
    "owner": "CIEL",
    "user": "alice",
    "repo": "CIEL",
    "version": "v1",
    "older": "v0",
    "concept": "1",
    "mapping": "M1",
}

PATH_VALUES = [
    "%00",
    "a%00b",
    "x" * 10_000,
    "%E2%98%83%F0%9F%98%80",  # a snowman and an emoji, as UTF-8
    "caf%C3%A9",
    "..%2F..%2Fetc%2Fpasswd",
    "%FF%FE",  # not UTF-8
    "-1",
    "9" * 40,
    "%20",
    "'%3B--",
]

REPOSITORY_ROUTES = [
    "sources/",
    "collections/",
    "sources/{repo}/",
    "sources/{repo}/versions/",
    "sources/{repo}/versions/feed/",
    "sources/{repo}/{version}/",
    "sources/{repo}/{version}/export/",
    "sources/{repo}/{version}/checksums/",
    "sources/{repo}/{version}/export/delta/?from={older}",
    "sources/{repo}/concepts/",
    "sources/{repo}/concepts/{concept}/",
    "sources/{repo}/concepts/{concept}/{concept_uuid}/",
    "sources/{repo}/{version}/concepts/",
    "sources/{repo}/{version}/concepts/{concept}/",
    "sources/{repo}/mappings/",
    "sources/{repo}/mappings/{mapping}/",
    "sources/{repo}/mappings/{mapping}/{mapping_uuid}/",
    "sources/{repo}/{version}/mappings/",
    "sources/{repo}/{version}/mappings/{mapping}/",
]
ROUTES = [
    *(f"/orgs/{{owner}}/{route}" for route in REPOSITORY_ROUTES),
    *(f"/users/{{user}}/{route}" for route in REPOSITORY_ROUTES),
    *(f"/user/{route}" for route in REPOSITORY_ROUTES),
    "/orgs/{owner}/feed/",
    "/users/{user}/feed/",
    "/exports/jobs/{job}/",
    "/exports/download/{token}/{file}",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
]
# Routes only staff may read: their valid paths are checked with a staff client.
STAFF_ROUTES = ["/mirror/subscriptions/", "/mirror/subscriptions/{subscription}/"]
ROUTES += STAFF_ROUTES
# The admin console: pages for a browser, checked for 5xx only (the last test).
CONSOLE = "admin/"
CONSOLE_ROUTES = [
    "/admin/ocl_export/export/{job}/change/",
    "/admin/ocl_export/export/?state={job}",
    "/admin/mirror/subscription/{subscription}/change/",
    "/admin/repos/repository/?q={job}",
    "/admin/django_rq/dashboard/queues/{job}/{job}/",
]
# Off until METRICS_TOKEN or METRICS_BIND is set: a 404 by design.
REFUSED = {"/metrics"}
# Methods each route answers beyond GET (the same views serve /users/ and /user/).
WRITES = {
    "versions/": ("post",),
    "{version}/": ("delete",),
    "export/": ("post", "delete"),
    "?from={older}": ("post",),
    "{file}": ("head",),
}
# Under /users/ and /user/ the views are those of /orgs/: only the owner's own segments vary.
OWNER_SLOTS = {"user", "repo"}

QUERY_VALUES = {
    "limit": ["-1", "9" * 40, str(2**63), "1.5", "0x10", "", "1e3"],
    "offset": ["-1", "9" * 40, str(2**63), "abc"],
    "updatedSince": [
        "yesterday",
        "2023-02-30",
        "2023-05-01T25:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "20231301000000",
        "99991231235959",
        "+275760-09-13",
        "2023-05-01T00:00:00+99:00",
        "",
    ],
    "includeConcepts": ["maybe", "TRUE", "", "1"],
    "checksums": ["maybe", "", "1", "%E2%98%83"],
    "format": ["xml", "", "..%2Ftgz", "ZIP", "tgz ", "%E2%98%83"],
    "wait": ["nan", "inf", "-1", "1e999", "x"],
    "q": ["%00"],
}
QUERY_ROUTES = [
    "/exports/jobs/{job}/",
    "/orgs/CIEL/sources/CIEL/v1/",
    "/orgs/CIEL/sources/CIEL/HEAD/concepts/",
    "/orgs/CIEL/sources/CIEL/v1/export/",
    "/orgs/CIEL/sources/CIEL/v1/checksums/",
    "/orgs/CIEL/sources/CIEL/versions/",
    "/orgs/CIEL/sources/CIEL/v1/concepts/1/",
]


@pytest.fixture
def content(org, alice, redis_conn):
    source = make_source(org, "CIEL")
    concept = add_concept(source, "1")
    mapping = add_mapping(source, "M1", from_concept=concept, to_concept=concept)
    make_version(source, "v0", created_on=timezone.now() - timedelta(days=1))  # a delta's base
    version = make_version(source, "v1")
    # zip: the table's POSTs (tgz) must not make this job active, or ?wait would hold each answer
    export = Export.objects.create(version=version, format="zip", state=ExportState.FAILED, error="test")
    return {
        **VALID,
        "concept_uuid": concept.uuid,
        "mapping_uuid": mapping.uuid,
        "job": str(export.pk),
        "token": "t0ken",
        "file": "CIEL_v1.tgz",
        "subscription": str(Subscription.objects.create(url="https://ocl.example.org/orgs/CIEL/sources/CIEL/").pk),
    }


def slots(template: str) -> list[str]:
    return [name for _, name, _, _ in Formatter().parse(template) if name]


def methods(template: str) -> tuple[str, ...]:
    for suffix, extra in WRITES.items():
        if template.endswith(suffix) and not template.startswith("/user"):
            return ("get", *extra)
    return ("get",)


def hostile_slots(template: str) -> list[str]:
    names = slots(template)
    return [name for name in names if name in OWNER_SLOTS] if template.startswith("/user") else names


def answer_problem(response) -> str | None:
    """What is wrong with an answer: a 5xx, or an error that is not JSON."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.content[:200]!r}"
    if response.status_code >= 400 and response.request["REQUEST_METHOD"] != "HEAD":
        if response.get("Content-Type", "").split(";")[0] != "application/json":
            return f"{response.status_code} is not JSON: {response.get('Content-Type')}"
    return None


def api_patterns() -> list:
    """The URL configuration without the admin console (HTML for a browser; see the last test)."""
    return [pattern for pattern in get_resolver().url_patterns if str(pattern.pattern) != CONSOLE]


def test_the_table_covers_every_route(content):
    covered = {resolve(template.format(**content).replace("%2F", "/").split("?")[0]).url_name for template in ROUTES}
    named = {pattern.name for pattern in api_patterns() if getattr(pattern, "name", None)}
    for pattern in api_patterns():
        named |= {p.name for p in getattr(pattern, "url_patterns", []) if p.name}
    assert named - covered == set()


def test_valid_paths_of_the_table_answer(alice_client, staff_client, content):
    """The hostile values replace segments of paths that work (alice owns no repository)."""
    for template in ROUTES:
        if "{token}" in template or (template.startswith("/user") and "{repo}" in template) or template in REFUSED:
            continue  # a made-up token is a 404 by design, and so is /metrics here
        client = staff_client if template in STAFF_ROUTES else alice_client
        response = client.get(template.format(**content))
        assert response.status_code < 400, (template, response.status_code)


def test_no_hostile_path_segment_gives_a_5xx_or_a_non_json_error(alice_client, content):
    alice_client.raise_request_exception = False
    problems = []
    for template in ROUTES:
        for slot in hostile_slots(template):
            for value in PATH_VALUES:
                path = template.format(**{**content, slot: value})
                for method in methods(template):
                    response = getattr(alice_client, method)(path)
                    problem = answer_problem(response)
                    if problem:
                        problems.append(f"{method.upper()} {template} {slot}={value[:30]}: {problem}")
    assert problems == []


def test_no_hostile_query_value_gives_a_5xx_or_a_non_json_error(alice_client, content):
    alice_client.raise_request_exception = False
    problems = []
    for template in QUERY_ROUTES:
        path = template.format(**content)
        for name, values in QUERY_VALUES.items():
            for value in values:
                for method in methods(template):
                    response = getattr(alice_client, method)(f"{path}?{name}={value}")
                    problem = answer_problem(response)
                    if problem:
                        problems.append(f"{method.upper()} {path}?{name}={value[:30]}: {problem}")
    assert problems == []


@pytest.mark.parametrize("where", ["owner", "repo", "version", "concept"])
def test_a_nul_in_a_path_segment_is_a_json_404(anon_client, content, where):
    path = "/orgs/{owner}/sources/{repo}/{version}/concepts/{concept}/".format(**{**content, where: "a%00b"})
    response = anon_client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_nul_in_a_query_value_is_a_json_400(anon_client, content):
    response = anon_client.get("/orgs/CIEL/sources/CIEL/v1/?updatedSince=2023%00")
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


def test_a_long_segment_is_an_ordinary_404(anon_client, content):
    response = anon_client.get(f"/orgs/{'x' * 10_000}/sources/")
    assert response.status_code == 404
    assert re.fullmatch(r"Organization 'x+' not found\.", response.json()["detail"])


def test_no_hostile_value_in_a_console_url_gives_a_5xx(client, staff, content):
    client.force_login(staff)
    client.raise_request_exception = False
    problems = []
    for template in CONSOLE_ROUTES:
        for value in PATH_VALUES:
            response = client.get(template.format(**{**content, "job": value, "subscription": value}))
            if response.status_code >= 500:
                problems.append(f"GET {template} = {value[:30]}: {response.status_code}")
    assert problems == []
