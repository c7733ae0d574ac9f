"""Who may use the console, and its admin site.

The console is for the people who run the service: staff (``is_staff``), who through the API
already see every repository and administer every export. Django's admin would also ask for a
model permission per table; :class:`StaffBackend` grants staff all of them, so "staff" means one
thing in the API and in the console (what a console page may change is then up to its
``ModelAdmin``: content is read-only there).

Repository admins who are not staff (the owner of a user's repository, an admin member of an
organization: ``Repository.is_admin``) may log in too, and see the one page that concerns them:
the exports of the repositories they administer, with the same actions (the API lets them
delete and rebuild those exports). Every other page stays staff-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from repos.models import Repository


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
