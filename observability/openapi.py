"""The pieces of an OpenAPI description that any app's routes are written with: schema helpers,
headers, an operation's answers, and the drf-spectacular schema class that answers from a table.

drf-spectacular reads serializers, and the service's views have none (the hot paths build bytes),
so it documented a 200 of unknown shape for every operation and logged a warning per view on every
request for the schema. :class:`TableSchema` answers from a table instead: the body and headers of
each status of each operation. The service's table is ``ocl_export.openapi``; ``operations``
describes its own routes with the helpers here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def loose(description: str, **properties: Schema) -> Schema:
    """An object with the named properties and possibly more (the OCL JSON carries many)."""
    return {"type": "object", "description": description, "properties": properties, "additionalProperties": True}


STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}
NULLABLE_INTEGER = {"type": "integer", "nullable": True}


def header(description: str, schema: Schema = STRING) -> Schema:
    return {"description": description, "schema": schema}


RETRY_AFTER = header("Seconds to wait before asking again", {"type": "integer"})


@dataclass(frozen=True)
class Answer:
    description: str
    body: Schema | None = None
    headers: dict[str, Schema] = field(default_factory=dict)
    media: tuple[str, ...] = ("application/json",)


def error(description: str, headers: dict[str, Schema] | None = None) -> Answer:
    return Answer(description, ref("Error"), headers or {})


def query(name: str, schema: Schema, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, location=OpenApiParameter.QUERY, required=False, description=description, type=schema)


@dataclass(frozen=True)
class Operation:
    answers: dict[int, Answer]
    parameters: list[OpenApiParameter] = field(default_factory=list)
    request: Schema | None = None


UNDESCRIBED = Operation({200: Answer("OK", {"type": "object", "additionalProperties": True})})


class TableSchema(AutoSchema):
    """AutoSchema answering from a table of operations (by view class name and method) and the
    answers any operation may give: no serializer guessing, so no warnings."""

    operations: dict[tuple[str, str], Operation] = {}
    common: dict[int, Answer] = {}
    # Path segments that are alternatives in the URL patterns.
    path_enums: dict[str, list[str]] = {}

    def get_operation_id(self) -> str:
        """From the method and the whole path: the views serve several paths each."""
        words = [part.strip("{}") for part in self.path.split("/") if part]
        suffix = "" if self.path.endswith("/") or "." in self.path else "_noslash"
        return "_".join([self.method.lower(), *words]).replace("-", "_").replace(".", "_") + suffix

    def operation(self) -> Operation:
        return self.operations.get((type(self.view).__name__, self.method), UNDESCRIBED)

    def answers(self) -> dict[int, Answer]:
        answers = dict(self.common)
        answers.update(self.operation().answers)
        return dict(sorted(answers.items()))

    def get_request_serializer(self) -> Any:
        request = self.operation().request
        return {"application/json": request} if request is not None else None

    def get_response_serializers(self) -> Any:
        # one entry per status: _get_response_for_code below writes the body of every media type
        return {status: OpenApiResponse(description=answer.description) for status, answer in self.answers().items()}

    def _get_response_for_code(
        self, serializer: Any, status_code: str, media_types: Any = None, direction: str = "response"
    ) -> Schema:
        answer = self.answers()[int(status_code)]
        response: Schema = {"description": answer.description}
        if answer.headers:
            response["headers"] = answer.headers
        if answer.body is not None:
            response["content"] = {media: {"schema": answer.body} for media in answer.media}
        return response

    def get_override_parameters(self) -> list[OpenApiParameter]:
        parameters = list(self.operation().parameters)
        owner_kind = ["orgs", "users"] if "{owner}" in self.path else ["user"]
        enums = {**self.path_enums, "owner_kind": owner_kind}
        for name, values in enums.items():
            if f"{{{name}}}" in self.path:
                parameters.append(OpenApiParameter(name, location=OpenApiParameter.PATH, enum=values, type=str))
        return parameters
