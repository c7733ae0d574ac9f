"""The one JSON parser of request bodies: what it accepts can be stored and rendered again.

DRF's parser hands on whatever ``json`` builds. Two things it builds cannot go further, and each
made a version create answer 500: a value nested a few thousand levels deep (the parser itself
ends in ``RecursionError``; a few hundred levels parse, but orjson refuses to render more than
255) and a string holding ``\\u0000`` (PostgreSQL text and jsonb cannot store NUL). Both are the
client's mistake, so both are a 400 here, before a view sees the body and before anything is
written.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Far more than any OCL body (extras are flat or nearly so), far less than what breaks rendering.
MAX_DEPTH = 64
NUL = "\x00"


def check_value(data: Any) -> None:
    """Raise ParseError for a value nested deeper than MAX_DEPTH or a string (or key) with NUL."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                raise ParseError("The JSON body contains a NUL character (\\u0000), which cannot be stored.")
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ParseError(f"The JSON body is nested deeper than {MAX_DEPTH} levels.")
            if isinstance(value, dict):
                stack.extend((key, depth) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"The JSON body is nested deeper than {MAX_DEPTH} levels.") from exc
        check_value(data)
        return data
