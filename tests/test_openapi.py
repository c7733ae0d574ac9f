"""/openapi.json: JSON by default, every status each operation can answer, and quiet to generate.

The live counterpart (schemathesis against gunicorn) is tests/live/test_schemathesis.py.
"""

from __future__ import annotations

import json

import pytest
from django.urls import get_resolver

from ocl_export.openapi import OPERATIONS

EXPORT = "/{owner_kind}/{owner}/{repo_type}/{repo}/{version}/export/"


@pytest.fixture
def schema(client, db) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def responses(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]["responses"]


def test_it_answers_json_without_being_asked(client, db):
    for accept in ("", "*/*", "text/html"):
        response = client.get("/openapi.json", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/json")
        assert json.loads(response.content)["openapi"].startswith("3.")


def test_generating_it_warns_of_nothing(client, db, capsys):
    client.get("/openapi.json")
    captured = capsys.readouterr()
    assert "Warning" not in captured.out + captured.err
    assert "Error" not in captured.out + captured.err


def test_every_status_the_service_answers_is_described(schema):
    described = {int(code) for ops in schema["paths"].values() for op in ops.values() for code in op["responses"]}
    assert described >= {200, 201, 202, 204, 208, 302, 303, 400, 401, 403, 404, 405, 409, 410, 503}
    assert not any(code >= 500 and code != 503 for code in described)


def test_the_export_resource_describes_both_profiles(schema):
    assert set(responses(schema, EXPORT, "get")) >= {"204", "208", "302", "303", "401", "404", "405", "503"}
    assert set(responses(schema, EXPORT, "post")) >= {"202", "208", "303", "400", "401", "404", "409", "503"}
    assert set(responses(schema, EXPORT, "delete")) >= {"200", "204", "401", "403", "404", "409"}


def test_answers_carry_their_headers_and_bodies(schema):
    get = responses(schema, EXPORT, "get")
    assert {"Location", "Last-Updated"} <= set(get["303"]["headers"])
    assert {"X-Export-State", "Retry-After", "Link"} <= set(get["204"]["headers"])
    assert get["208"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ExportJob"}
    assert get["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    post = responses(schema, EXPORT, "post")
    assert post["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ExportJob"}
    assert "Retry-After" in post["503"]["headers"]
    download = responses(schema, "/exports/download/{token}/{file_name}", "get")
    assert set(download) >= {"200", "302", "404", "410"}
    assert set(download["200"]["content"]) == {"application/gzip", "application/zip"}
    version = responses(schema, "/{owner_kind}/{owner}/{repo_type}/{repo}/{version}/", "get")
    assert set(version["200"]["content"]) == {"application/json", "application/zip"}
    assert "num_found_concepts" in version["200"]["headers"]
    assert set(schema["components"]["schemas"]) >= {"Error", "ExportJob", "Version", "Item", "Repository"}


def test_path_alternatives_are_enumerated(schema):
    parameters = {p["name"]: p for p in schema["paths"][EXPORT]["get"]["parameters"]}
    assert set(parameters["owner_kind"]["schema"]["enum"]) == {"orgs", "users"}
    assert set(parameters["repo_type"]["schema"]["enum"]) == {"sources", "collections"}
    assert set(parameters["format"]["schema"]["enum"]) == {"tgz", "zip"}
    own = {
        p["name"]: p for p in schema["paths"]["/{owner_kind}/{repo_type}/{repo}/{version}/export/"]["get"]["parameters"]
    }
    assert own["owner_kind"]["schema"]["enum"] == ["user"]


def test_every_described_view_is_one_the_service_routes(schema):
    """The table names views by class: a renamed view must not leave a stale row behind."""

    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            else:
                yield getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)

    routed = {view.__name__ for view in views(get_resolver().url_patterns) if view is not None}
    assert {name for name, _ in OPERATIONS} <= routed
