"""The console's middleware, and the requests it runs for.

Sessions, CSRF, users, messages, frame options and static files are the console's alone: an API
client sends a token, or nothing, and never a session. :class:`ConsoleMiddleware` runs them for
the console's pages, its static files and requests carrying a session cookie only
(``serving.scoped`` says why it matters: a third of a kept answer's time).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from foundation.errors import json_404
from serving.scoped import ScopedMiddleware

# django-rq's pages (inside the console) look a queue up by its place in RQ_QUEUES, and one that
# is not there (/admin/django_rq/dashboard/queues/7/) raises IndexError: a 500 for a typo.
CONSOLE = "/admin/"
RQ_PAGES = CONSOLE + "django_rq/"


class ConsoleMiddleware(ScopedMiddleware):
    """The console's middleware, run for the console's requests alone: its pages and static files,
    and any request carrying a session cookie (a logged-in admin may read and write the API with
    its session; DRF's ``SessionAuthentication`` then needs the user these set, and checks CSRF
    itself). An API client's request (a token or nothing, no session) skips all of it."""

    chain = (
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "console.middleware.QueuePagesNotFoundMiddleware",
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        super().__init__(get_response)
        self.paths = (CONSOLE, settings.STATIC_URL)

    def applies(self, request: HttpRequest) -> bool:
        return request.path_info.startswith(self.paths) or (
            "HTTP_COOKIE" in request.META and settings.SESSION_COOKIE_NAME in request.COOKIES
        )


class QueuePagesNotFoundMiddleware:
    """Answers 404 where django-rq's pages fail to find the queue or worker a URL names."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if request.path.startswith(RQ_PAGES) and isinstance(exception, IndexError | KeyError):
            return json_404(request)
        return None
