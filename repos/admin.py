"""Repositories and their versions in the admin console, read-only.

Content is written by the importer alone (and versions by the API's POST), so the console shows
it and changes nothing: an edit here would bypass the renderings and checks the importer keeps.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Repository, RepositoryVersion


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Repository)
class RepositoryAdmin(ReadOnly):
    list_display = ("__str__", "repo_type", "name", "public_access", "updated_on")
    list_filter = ("repo_type", "public_access")
    search_fields = ("mnemonic", "name", "owner_org__mnemonic", "owner_user__username")
    list_select_related = ("owner_org", "owner_user")
    exclude = ("extras", "supported_locales")


@admin.register(RepositoryVersion)
class RepositoryVersionAdmin(ReadOnly):
    list_display = ("__str__", "released", "retired", "last_updated", "created_on")
    list_filter = ("released", "retired")
    search_fields = ("version", "repository__mnemonic")
    list_select_related = ("repository__owner_org", "repository__owner_user")
    raw_id_fields = ("repository", "previous_version")
    exclude = ("concepts", "mappings", "references", "extras")
