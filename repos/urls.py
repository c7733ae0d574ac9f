"""Routes of the read API, mounted at the host root.

APPEND_SLASH is off (OpenMRS must reach ``.../export`` without a redirect), so every pattern
ends in ``/?$`` and answers both spellings. The export routes are included before these: a
path such as ``:repo/:version/export/`` never reaches this module, and nothing here matches it.

Literal segments (``versions``, ``concepts``, ``mappings``) come before ``:version`` and those
names are refused as version ids, so a version can never hide them or be hidden by them.
"""

from __future__ import annotations

from django.urls import URLPattern, re_path

from repos.representation.items import CONCEPTS, MAPPINGS
from repos.views.checksums import VersionChecksumsView
from repos.views.items import ItemDetailView, ItemListView
from repos.views.repositories import RepositoryDetailView, RepositoryListView
from repos.views.versions import VersionDetailView, VersionListView

SEGMENT = r"[^/]+"

# "/orgs/:org/", "/users/:user/", and "/user/" for the caller's own account.
OWNERS = {
    "": rf"(?P<owner_kind>orgs|users)/(?P<owner>{SEGMENT})/",
    "-self": r"(?P<owner_kind>user)/",
}
REPO_TYPE = r"(?P<repo_type>sources|collections)"
REPO = rf"{REPO_TYPE}/(?P<repo>{SEGMENT})/"
VERSION = rf"(?P<version>{SEGMENT})/"
ITEM = rf"(?P<item>{SEGMENT})"


def item_routes(suffix: str) -> list[tuple[str, object, str]]:
    routes: list[tuple[str, object, str]] = []
    for kind in (CONCEPTS, MAPPINGS):
        detail = ItemDetailView.as_view(kind=kind)
        listing = ItemListView.as_view(kind=kind)
        key = kind.key
        routes += [
            (rf"{REPO}{key}/?$", listing, f"{key}-list{suffix}"),
            (rf"{REPO}{key}/{ITEM}/?$", detail, f"{key}-detail{suffix}"),
            (rf"{REPO}{key}/{ITEM}/(?P<uuid>{SEGMENT})/?$", detail, f"{key}-version-detail{suffix}"),
            (rf"{REPO}{VERSION}{key}/?$", listing, f"version-{key}-list{suffix}"),
            (rf"{REPO}{VERSION}{key}/{ITEM}/?$", detail, f"version-{key}-detail{suffix}"),
        ]
    return routes


def owner_routes(suffix: str) -> list[tuple[str, object, str]]:
    return [
        (rf"{REPO_TYPE}/?$", RepositoryListView.as_view(), f"repository-list{suffix}"),
        (rf"{REPO}?$", RepositoryDetailView.as_view(), f"repository-detail{suffix}"),
        (rf"{REPO}versions/?$", VersionListView.as_view(), f"version-list{suffix}"),
        *item_routes(suffix),
        (rf"{REPO}{VERSION}checksums/?$", VersionChecksumsView.as_view(), f"version-checksums{suffix}"),
        (rf"{REPO}{VERSION}?$", VersionDetailView.as_view(), f"version-detail{suffix}"),
    ]


urlpatterns: list[URLPattern] = [
    re_path(rf"^{owner}{pattern}", view, name=name)
    for suffix, owner in OWNERS.items()
    for pattern, view, name in owner_routes(suffix)
]
