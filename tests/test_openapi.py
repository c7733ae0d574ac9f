"""/openapi.json: JSON by default, every status each operation can answer, and quiet to generate;
the operators' routes (/healthz, /readyz, /metrics) answer as it describes them.

The live counterpart (schemathesis against gunicorn) is tests/live/test_schemathesis.py.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from django.urls import get_resolver, resolve

from ocl_export.openapi import OPERATIONS
from operations import urls as operations_urls
from tests.live.stack import free_port

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
    assert described >= {200, 201, 202, 204, 208, 302, 303, 400, 401, 403, 404, 405, 409, 410, 429, 503}
    assert not any(code >= 500 and code != 503 for code in described)


def test_the_export_resource_describes_both_profiles(schema):
    assert set(responses(schema, EXPORT, "get")) >= {"204", "208", "302", "303", "401", "404", "405", "503"}
    assert set(responses(schema, EXPORT, "post")) >= {"202", "208", "303", "400", "401", "404", "409", "503"}
    assert set(responses(schema, EXPORT, "delete")) >= {"200", "202", "204", "401", "403", "404"}
    cancel = responses(schema, "/exports/jobs/{id}/", "delete")
    assert set(cancel) >= {"202", "401", "403", "404", "409"}
    assert cancel["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ExportJob"}


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


# --- the operators' routes (operations/openapi.py) ---------------------------------------------


def inline(schema: dict, node: object) -> object:
    """``node`` with every ``$ref`` into the components replaced by what it names."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline(schema, schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
        return {key: inline(schema, value) for key, value in node.items()}
    if isinstance(node, list):
        return [inline(schema, value) for value in node]
    return node


def conforms(schema: dict, path: str, response, status: int) -> None:
    """The answer has ``status``, and its media type, headers and body are those /openapi.json
    describes for that status."""
    assert response.status_code == status, response.content
    described = responses(schema, path, "get")[str(status)]
    media = response["Content-Type"].split(";")[0]
    assert set(described["content"]) == {media}
    assert set(described.get("headers", {})) <= {name for name, _ in response.items()}
    body = response.content.decode()
    instance = json.loads(body) if media == "application/json" else body
    jsonschema.validate(instance, inline(schema, described["content"][media]["schema"]))


def test_healthz_readyz_and_metrics_are_described_under_the_paths_they_answer(schema):
    operators = {path for path, ops in schema["paths"].items() if ops.get("get", {}).get("tags") == ["operations"]}
    assert operators == {"/healthz", "/readyz", "/metrics"}
    assert {resolve(path).url_name for path in operators} == {pattern.name for pattern in operations_urls.urlpatterns}
    assert set(responses(schema, "/healthz", "get")) == {"200", "400"}
    assert set(responses(schema, "/readyz", "get")) == {"200", "400", "503"}
    assert set(responses(schema, "/metrics", "get")) == {"200", "400", "401", "404"}


def test_healthz_answers_as_described(schema, client):
    conforms(schema, "/healthz", client.get("/healthz"), 200)


def test_readyz_names_every_check_as_described_ready_or_not(schema, client, settings, fs_storage):
    settings.READYZ_TIMEOUT = 5
    assert schema["components"]["schemas"]["ReadinessChecks"]["required"] == ["database", "redis", "storage"]
    conforms(schema, "/readyz", client.get("/readyz"), 200)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    conforms(schema, "/readyz", client.get("/readyz"), 503)
    assert "Retry-After" in responses(schema, "/readyz", "get")["503"]["headers"]


def test_metrics_are_described_as_text_when_allowed_and_json_404_or_401_when_not(schema, client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_BIND_PORT = None
    conforms(schema, "/metrics", client.get("/metrics"), 404)  # off
    settings.METRICS_BIND_PORT = 9464
    conforms(schema, "/metrics", client.get("/metrics", SERVER_PORT="8000"), 404)  # another listener
    conforms(schema, "/metrics", client.get("/metrics", SERVER_PORT="9464"), 200)
    settings.METRICS_BIND_PORT = None
    settings.METRICS_TOKEN = "described-token"
    conforms(schema, "/metrics", client.get("/metrics"), 401)
    conforms(schema, "/metrics", client.get("/metrics", HTTP_AUTHORIZATION="Bearer described-token"), 200)
    assert schema["paths"]["/metrics"]["get"]["security"] == [{"metricsToken": []}, {}]
    assert schema["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
