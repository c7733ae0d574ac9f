"""HEAD answers carry GET's headers and no body, whatever produced them.

Views answer HEAD as GET (Django maps one to the other), and the error handler builds a JSON body
for a 404 or 410 alike. A WSGI server must not send a HEAD response's body: gunicorn drops it and
logs "WSGI app sent body bytes on a no-body response" for each one (a link checker's ``curl -I``
of a used Location did that at every call). Dropping it here, once for every route, keeps the
body from being sent and the log clean; ``Content-Length`` still says what GET would send.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase


class HeadWithoutBodyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.method != "HEAD":
            return response
        if response.streaming:
            # (a FileResponse's file stays registered for closing when the server closes the response)
            response.streaming_content = iter(())
        elif response.content:
            if not response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response
