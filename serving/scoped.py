"""Middleware that runs only for the requests it concerns.

Django runs every entry of ``MIDDLEWARE`` on every request. Some middleware serves one part of
the site alone: the admin console's sessions, CSRF checks, messages and static files are nothing
to an API client that sends a token and no cookie, yet together they cost about a third of a
kept answer's time (measured: 160 µs a request without them, 230 µs with them). A
:class:`ScopedMiddleware` holds such a chain and runs it only when :meth:`applies` says the
request is in its scope; every other request goes straight to the next entry.

It stands in ``MIDDLEWARE`` as one entry, so it also forwards Django's hooks, which the handler
looks for on the entries of ``MIDDLEWARE`` alone: ``process_view`` (the CSRF check lives there),
``process_exception`` and ``process_template_response``, each to the chain's members in the order
Django would have called them, and only for a request in scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.module_loading import import_string

Handler = Callable[[HttpRequest], HttpResponseBase]


class ScopedMiddleware:
    """A chain of middleware (``chain``: dotted paths, outermost first) run for the requests
    :meth:`applies` selects."""

    chain: tuple[str, ...] = ()

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        handler: Handler = get_response
        members: list[Any] = []
        for path in reversed(self.chain):
            try:
                member = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
            members.insert(0, member)
            handler = convert_exception_to_response(member)
        self.scoped = handler
        self.members = tuple(members)

    def applies(self, request: HttpRequest) -> bool:
        raise NotImplementedError

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if self.applies(request):
            return self.scoped(request)
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable, args: tuple, kwargs: dict) -> HttpResponseBase | None:
        if not self.applies(request):
            return None
        for member in self.members:
            hook = getattr(member, "process_view", None)
            if hook is not None and (response := hook(request, view, args, kwargs)) is not None:
                return response
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not self.applies(request):
            return None
        for member in reversed(self.members):
            hook = getattr(member, "process_exception", None)
            if hook is not None and (response := hook(request, exception)) is not None:
                return response
        return None

    def process_template_response(self, request: HttpRequest, response: Any) -> Any:
        if not self.applies(request):
            return response
        for member in reversed(self.members):
            hook = getattr(member, "process_template_response", None)
            if hook is not None:
                response = hook(request, response)
        return response
