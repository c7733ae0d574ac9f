"""Routes of the export feature, included before the read API's.

APPEND_SLASH is off: OpenMRS asks for ``.../export`` and must be answered directly, so every
pattern accepts the path with and without its trailing slash.
"""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from .delta_views import DeltaView
from .feed_views import OwnerFeedView, RepositoryFeedView
from .views import DownloadView, ExportStatusView, ExportView

SEGMENT = r"[^/]+"
REPO_VERSION = rf"(?P<repo_type>sources|collections)/(?P<repo>{SEGMENT})/(?P<version>{SEGMENT})"

urlpatterns: list[URLPattern] = [
    re_path(
        rf"^(?P<owner_kind>orgs|users)/(?P<owner>{SEGMENT})/{REPO_VERSION}/export/?$",
        ExportView.as_view(),
        name="export",
    ),
    # "/user/...": the caller's own account
    re_path(rf"^(?P<owner_kind>user)/{REPO_VERSION}/export/?$", ExportView.as_view(), name="export-self"),
    # ".../:version/export/delta/?from=:older": the delta from an older version to this one
    re_path(
        rf"^(?P<owner_kind>orgs|users)/(?P<owner>{SEGMENT})/{REPO_VERSION}/export/delta/?$",
        DeltaView.as_view(),
        name="export-delta",
    ),
    re_path(rf"^(?P<owner_kind>user)/{REPO_VERSION}/export/delta/?$", DeltaView.as_view(), name="export-delta-self"),
    # the release feed, beside the versions list, and an owner's
    re_path(
        rf"^(?P<owner_kind>orgs|users)/(?P<owner>{SEGMENT})/(?P<repo_type>sources|collections)/(?P<repo>{SEGMENT})"
        r"/versions/feed/?$",
        RepositoryFeedView.as_view(),
        name="release-feed",
    ),
    re_path(
        rf"^(?P<owner_kind>user)/(?P<repo_type>sources|collections)/(?P<repo>{SEGMENT})/versions/feed/?$",
        RepositoryFeedView.as_view(),
        name="release-feed-self",
    ),
    re_path(rf"^(?P<owner_kind>orgs|users)/(?P<owner>{SEGMENT})/feed/?$", OwnerFeedView.as_view(), name="owner-feed"),
    path("exports/jobs/<int:pk>/", ExportStatusView.as_view(), name="export-status"),
    path("exports/jobs/<int:pk>", ExportStatusView.as_view()),
    re_path(
        rf"^exports/download/(?P<token>{SEGMENT})/(?P<file_name>{SEGMENT})$",
        DownloadView.as_view(),
        name="export-download",
    ),
]
