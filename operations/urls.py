"""Operators' routes, at the host root like the API's, with and without the trailing slash."""

from django.urls import URLPattern, re_path

from . import views

urlpatterns: list[URLPattern] = [
    re_path(r"^healthz/?$", views.healthz, name="healthz"),
    re_path(r"^readyz/?$", views.readyz, name="readyz"),
    re_path(r"^metrics/?$", views.metrics_view, name="metrics"),
]
