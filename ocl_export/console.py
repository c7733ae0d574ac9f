"""The admin console (Django's admin at ``/admin/``): who may use it, and how its actions report.

The console is for the people who run the service: staff (``is_staff``), who through the API
already see every repository and administer every export. Django's admin would also ask for a
model permission per table; :class:`StaffBackend` grants staff all of them, so "staff" means one
thing in the API and in the console (what a console page may change is then up to its
``ModelAdmin``: content is read-only there).

Repository admins who are not staff (the owner of a user's repository, an admin member of an
organization: ``Repository.is_admin``) may log in too, and see the one page that concerns them:
the exports of the repositories they administer, with the same actions (the API lets them
delete and rebuild those exports). Every other page stays staff-only.

Every action of the console calls the same function as the API or the commands (``queue_export``
for a rebuild, ``delete_export`` for a delete, the mirror's ``schedule`` for "sync now"), one
object at a time, through :func:`run_action`, which tells the admin what happened to each.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from redis.exceptions import RedisError
from rest_framework.exceptions import APIException

from foundation.errors import json_404
from repos.models import Repository
from serving.scoped import ScopedMiddleware


class StaffBackend(ModelBackend):
    """Username and password as usual; every permission for active staff."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff) or super().has_perm(user_obj, perm, obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff) or super().has_module_perms(user_obj, app_label)


def may_use_console(user: Any) -> bool:
    """Staff, and repository admins (who see only their repositories' exports)."""
    if not (user.is_active and user.is_authenticated):
        return False
    return bool(user.is_staff) or Repository.objects.administered_by(user).exists()


class ConsoleLoginForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the username and password of a staff account or of an administrator "
        "of a repository. Both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user: Any) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # active; the admin's own form wants staff
        if not may_use_console(user):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login")


class ConsoleSite(admin.AdminSite):
    site_header = site_title = "OCL export service"
    index_title = "Console"
    login_form = ConsoleLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return may_use_console(request.user)


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
        "ocl_export.console.QueuePagesNotFoundMiddleware",
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


# One object's outcome: a few words saying what happened ("deleted", "queued", "already being
# produced"). Outcomes are grouped in the message the admin shows.
Operation = Callable[[Any, Any], str]


def run_action(request: HttpRequest, objects: Iterable[Any], operation: Operation) -> dict[str, list[str]]:
    """``operation(obj, user)`` for each object; one admin message per outcome, naming the
    objects. An API error (a 409, a 503 of a Redis that is away) is that object's outcome."""
    outcomes: dict[str, list[str]] = defaultdict(list)
    failed: set[str] = set()
    for obj in objects:
        try:
            outcome = operation(obj, request.user)
        except APIException as exc:
            outcome = str(exc.detail)
            failed.add(outcome)
        except RedisError as exc:
            outcome = f"the job queue is unavailable ({type(exc).__name__})"
            failed.add(outcome)
        outcomes[outcome].append(str(obj))
    for outcome, names in outcomes.items():
        level = messages.ERROR if outcome in failed else messages.SUCCESS
        messages.add_message(request, level, f"{outcome[:1].upper()}{outcome[1:]}: {', '.join(names)}")
    return dict(outcomes)
